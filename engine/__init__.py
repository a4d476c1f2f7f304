"""Fold Studio engine: the headless library behind the studio (and its own CLI, ``python -m engine``).

Public API (everything else is internal and may change). The names below are importable from
``engine`` directly; heavy ones (torch, timm, the analysis stack) load on first use, so
``import engine`` stays cheap.

- datasets: :func:`open_dataset`, :class:`Dataset`, :class:`DatasetSpec`, :func:`make_demo_dataset`,
  :func:`load_rgb`, :func:`scan_dataset`
- augmentations: :func:`pipeline_from_dict`, :func:`preset`, :func:`list_tta_views`
- training: :func:`load_run_configs`, :class:`RunConfig`, :func:`create_runs`, :func:`train_run`,
  :func:`predict_run`, :func:`list_models`, :func:`load_fold_model`
- runs: :func:`list_runs` (the one listing of a workspace's runs, :mod:`engine.runs`)
- jobs: :func:`launch_training`, :func:`create_launcher`, :func:`effective_status`
- search: :func:`launch_search`, :func:`list_searches` (Optuna; :mod:`engine.search`)
- analysis: :func:`load_predictions`, :func:`compare_folds`, :func:`compare_voting`, :func:`compare_tta`,
  :func:`compare_label_smoothing`, :func:`compare_augmentation`, :func:`search_ensembles`, :func:`paired_bootstrap`,
  :func:`make_submission`
- label review: :func:`label_issues` (confident learning), :func:`set_override` (label overrides),
  :func:`compare_on_common_samples`, :func:`set_leaderboard_score`
- explanations: :func:`compute_cams`, :func:`list_cam_methods`
- errors: :class:`EngineError` and its subclasses

The engine never imports streamlit, and touches the network only to fetch pretrained weights a run
allows it to download (:mod:`engine.offline`).
"""

import importlib as _importlib

# Nothing downloads unless a run allows it (engine.offline): timm / huggingface_hub and albumentations
# stay off-line, and the user's own HF_HUB_OFFLINE is kept aside first (it always wins).
from engine.offline import protect_process as _protect_process  # noqa: E402

_protect_process()

from engine.augment import list_tta_views, pipeline_from_dict  # noqa: E402
from engine.data import Dataset, DatasetSpec, Problem, load_rgb, make_demo_dataset, open_dataset  # noqa: E402
from engine.errors import AnalysisError, ConfigError, DatasetError, EngineError, RunError  # noqa: E402

_LAZY = {
    "scan_dataset": "engine.data.scan",
    "preset": "engine.augment.presets",
    "load_run_configs": "engine.training.config",
    "RunConfig": "engine.training.config",
    "create_runs": "engine.training.create",
    "list_runs": "engine.runs",
    "train_run": "engine.training.fit",
    "predict_run": "engine.training.predict",
    "list_models": "engine.training.models",
    "load_fold_model": "engine.training.models",
    "launch_training": "engine.jobs",
    "create_launcher": "engine.jobs",
    "effective_status": "engine.jobs",
    "load_predictions": "engine.analysis",
    "compare_folds": "engine.analysis",
    "compare_voting": "engine.analysis",
    "compare_tta": "engine.analysis",
    "compare_label_smoothing": "engine.analysis",
    "compare_augmentation": "engine.analysis",
    "search_ensembles": "engine.analysis",
    "paired_bootstrap": "engine.analysis",
    "make_submission": "engine.submission",
    "set_leaderboard_score": "engine.submission",
    "label_issues": "engine.analysis.label_issues",
    "compare_on_common_samples": "engine.analysis.common_samples",
    "set_override": "engine.data.overrides",
    "compute_cams": "engine.explain",
    "list_cam_methods": "engine.explain",
    "launch_search": "engine.search",
    "list_searches": "engine.search",
}

__all__ = [
    "AnalysisError", "ConfigError", "Dataset", "DatasetError", "DatasetSpec", "EngineError", "Problem", "RunError",
    "list_tta_views", "load_rgb", "make_demo_dataset", "open_dataset", "pipeline_from_dict", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
