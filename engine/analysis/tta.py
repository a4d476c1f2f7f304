"""Merging test-time-augmentation views of one model into one prediction.

:func:`merge_views` takes logits ``(views, ..., samples, classes)`` and returns **log-probabilities**
with the view axis removed, so a merged prediction can be voted on like any model's logits
(``softmax(log p) == p``). Modes (:data:`TTA_MODES`):

- ``mean``: mean of the views' probabilities (computed as ``logsumexp(log p_v) - log V``);
- ``geometric``: renormalised geometric mean of the probabilities — for softmax outputs this is the
  same prediction as ``logit_mean``, both are listed because both names are in common use;
- ``max``: per class, the largest probability over the views, renormalised to sum to 1;
- ``logit_mean``: softmax of the mean of the logits.
"""

from __future__ import annotations

import numpy as np

from engine.analysis.metrics import log_softmax
from engine.errors import AnalysisError

TTA_MODES = ("mean", "geometric", "max", "logit_mean")


def check_tta_mode(mode: str) -> str:
    if mode not in TTA_MODES:
        raise AnalysisError(f"The 'tta' merge mode must be a str among {list(TTA_MODES)}. Got {mode!r} instead.")
    return mode


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def merge_views(logits: np.ndarray, mode: str = "mean") -> np.ndarray:
    """Merge views on axis 0 of ``logits`` ``(views, ..., classes)`` -> log-probabilities ``(..., classes)``."""
    check_tta_mode(mode)
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim < 2 or logits.shape[0] == 0:
        raise AnalysisError(f"merge_views needs logits (views, ..., classes) with at least one view; got {logits.shape}.")
    n_views = logits.shape[0]
    if mode == "logit_mean":
        return log_softmax(logits.mean(axis=0))
    logp = log_softmax(logits)
    if mode == "mean":
        return _logsumexp(logp, axis=0) - np.log(n_views)
    if mode == "geometric":
        return log_softmax(logp.mean(axis=0))
    return log_softmax(logp.max(axis=0))  # max: renormalise the per-class maxima
