"""Fold Studio engine: the headless library behind the studio (and its own CLI, ``python -m engine``).

Public API (everything else is internal and may change):

- datasets: :func:`open_dataset`, :class:`Dataset`, :class:`DatasetSpec`, :func:`make_demo_dataset`,
  :func:`load_rgb`
- augmentations: :func:`pipeline_from_dict`, :func:`list_tta_views`
- errors: :class:`EngineError` and its subclasses

The engine never imports streamlit and never touches the network.
"""

import os as _os

# Nothing may download at run time; these make timm / huggingface_hub and albumentations say so.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from engine.augment import list_tta_views, pipeline_from_dict  # noqa: E402
from engine.data import Dataset, DatasetSpec, Problem, load_rgb, make_demo_dataset, open_dataset  # noqa: E402
from engine.errors import AnalysisError, ConfigError, DatasetError, EngineError, RunError  # noqa: E402

__all__ = [
    "AnalysisError", "ConfigError", "Dataset", "DatasetError", "DatasetSpec", "EngineError", "Problem", "RunError",
    "list_tta_views", "load_rgb", "make_demo_dataset", "open_dataset", "pipeline_from_dict",
]
