"""Defaults a new run starts from, taken from the data and the model rather than from names.

- Image size (:func:`default_image_size`): a model that starts from pretrained weights, or that only
  takes one input size (timm's ``fixed_input_size``: ViT, Swin, ...), gets the input size of its
  pretrained config. Any other model gets the dataset's typical size: the median shorter side of its
  images (:func:`typical_image_side`) rounded to the nearest multiple of :data:`SIZE_MULTIPLE` (32,
  the total stride of timm's CNNs and a multiple of the 8 / 16 / 32 px ViT patches), at least 32.
- Folds (:func:`default_k`): the usual 5, or when the smallest class (after the holdout) cannot
  fill 5 folds, the largest k that fits, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import ConfigError

SIZE_MULTIPLE = 32
USUAL_K = 5
HEADER_SAMPLE = 256  # images whose headers give the typical size when there is no scan


@dataclass(frozen=True)
class SizeDefault:
    """A default image size and the rule that gave it (a sentence for the form)."""

    size: int
    rule: str


@dataclass(frozen=True)
class KDefault:
    """A default number of folds; ``reason`` says why it is not the usual one (None when it is)."""

    k: int
    reason: str | None


def _header_side(path: str) -> int | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:  # reads the header only
            return int(min(img.size))
    except (OSError, UnidentifiedImageError, ValueError):  # unreadable files are the scan's business
        return None


def typical_image_side(paths: Sequence[str], *, scan: pd.DataFrame | None = None, sample: int = HEADER_SAMPLE,
                       seed: int = 0) -> int | None:
    """The median shorter side (px) of a dataset's images; None when no image can be read.

    From a scan table (its ``width`` / ``height`` columns) when given, else from the headers of at most
    ``sample`` of ``paths`` drawn with ``seed`` (no pixel is decoded).
    """
    if scan is not None and {"width", "height"} <= set(scan.columns):
        sides = np.minimum(pd.to_numeric(scan["width"], errors="coerce"), pd.to_numeric(scan["height"], errors="coerce"))
        sides = sides.dropna().to_numpy(dtype=float)
    else:
        paths = list(paths)
        if len(paths) > sample:
            picks = np.random.default_rng(seed).choice(len(paths), size=sample, replace=False)
            paths = [paths[i] for i in sorted(picks)]
        sides = np.array([s for s in map(_header_side, paths) if s], dtype=float)
    return int(round(float(np.median(sides)))) if len(sides) else None


def round_to_multiple(side: int, multiple: int = SIZE_MULTIPLE) -> int:
    """``side`` rounded to the nearest multiple of ``multiple`` (halves up), at least ``multiple``."""
    return max(multiple, int((side + multiple // 2) // multiple) * multiple)


def default_image_size(model_name: str, pretrained: str, typical_side: int | None) -> SizeDefault:
    """The image size a run of ``model_name`` should start from (see the module's rules)."""
    from engine.training.config import PRETRAINED_NONE, check_pretrained
    from engine.training.models import model_data_config
    from engine.training.pretrained import timm_pretrained_cfg

    own = int(model_data_config(model_name)["input_size"][-1])
    cfg = timm_pretrained_cfg(model_name)
    if check_pretrained(pretrained) != PRETRAINED_NONE:
        return SizeDefault(own, f"the input size of {model_name}'s pretrained weights")
    if cfg is not None and cfg.fixed_input_size:
        return SizeDefault(own, f"{model_name} only takes its own input size")
    if typical_side is None:
        return SizeDefault(own, f"{model_name}'s default input size (no image size could be read from the dataset)")
    size = round_to_multiple(typical_side)
    return SizeDefault(size, f"the images' median shorter side ({typical_side} px) rounded to a multiple of "
                             f"{SIZE_MULTIPLE} (the total stride of timm's CNNs)")


def default_k(manifest: pd.DataFrame, *, classes: Sequence[str] | None = None, holdout_fraction: float = 0.1,
              group_column: str | None = None, seed: int = 42, usual: int = USUAL_K) -> KDefault:
    """The usual k, or the largest smaller k the split allows (the same check a launch runs)."""
    from engine.training.config import SplitConfig
    from engine.training.splits import check_split_feasible

    first: ConfigError | None = None
    for k in range(usual, 1, -1):
        split = SplitConfig(k=k, seed=seed, holdout_fraction=holdout_fraction, group_column=group_column)
        try:
            check_split_feasible(manifest, split, classes=classes)
        except ConfigError as e:
            first = first or e
            continue
        return KDefault(k, None if first is None else f"k={k} instead of the usual {usual}: {first}")
    return KDefault(2, f"Not even k=2 fits this dataset: {first}")
