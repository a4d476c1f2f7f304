"""Paired bootstrap of a metric difference between two prediction sets on the same labelled samples.

:func:`paired_bootstrap` resamples the *samples* (with replacement, ``n`` out of ``n``), scores A and
B on each resample and reports the difference ``A - B`` on the full data with the percentile
interval of the resampled differences (95% by default). Pairing matters: A and B are always scored
on the same resample, so what they share (easy and hard samples) cancels out of the interval.

Vectorized two ways, both exact draws from the same bootstrap distribution:

- **Label metrics** (accuracy, balanced accuracy, macro-F1) depend on a resample only through how
  often each joint outcome occurs — ``(correct_a, correct_b)`` for accuracy, ``(true, pred_a,
  pred_b)`` for the per-class metrics. Drawing ``n`` samples uniformly is the same as drawing the
  counts of those outcomes from a multinomial with their observed frequencies, so the resampled
  counts come from ``Generator.multinomial`` over the (few) observed outcomes, and per-class true
  positives / predicted / true counts are one matrix product each. When there are too many distinct
  outcomes for that to pay (many classes), the same counts come from an index matrix instead.
- **Per-sample losses** (log loss, Brier) are averaged over an index matrix ``(resamples, n)``
  drawn in chunks (of about 8M indices, so memory stays bounded).

Seeded (``numpy.random.default_rng(seed)``): the same inputs and seed give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from engine.analysis.metrics import (
    LABEL_METRICS,
    balanced_accuracy_from_counts,
    macro_f1_from_counts,
    nll_per_sample,
)
from engine.errors import AnalysisError

BOOTSTRAP_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier")
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
_MULTINOMIAL_MAX_OUTCOMES = 4096
_CHUNK_INDICES = 8_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """A paired-bootstrap comparison ``A - B`` of one metric.

    ``diff_range`` is the percentile interval at ``confidence``; ``share_above_zero`` the share of
    resamples where ``A - B > 0`` (for ``log_loss`` / ``brier`` a *negative* difference favours A).
    """

    metric: str
    value_a: float
    value_b: float
    diff: float
    diff_range: tuple[float, float]
    share_above_zero: float
    confidence: float
    n_resamples: int
    n_samples: int
    seed: int

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of 0 (a difference unlikely to be noise)."""
        return self.diff_range[0] > 0 or self.diff_range[1] < 0

    @property
    def a_is_better(self) -> bool | None:
        """True / False when the interval excludes 0 in favour of A / B; None when it straddles 0."""
        if not self.excludes_zero:
            return None
        return (self.diff < 0) if self.metric in LOWER_IS_BETTER else (self.diff > 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["diff_low"], d["diff_high"] = self.diff_range
        del d["diff_range"]
        d["excludes_zero"] = self.excludes_zero
        return d


def check_metric(metric: str) -> str:
    if metric not in BOOTSTRAP_METRICS:
        raise AnalysisError(f"The 'metric' parameter must be a str among {list(BOOTSTRAP_METRICS)}. "
                            f"Got {metric!r} instead.")
    return metric


def _as_labels(x: np.ndarray, n: int, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = np.argmax(x, axis=1)
    if x.shape != (n,):
        raise AnalysisError(f"{name} must be (samples,) labels or (samples, classes) probabilities for {n} samples; "
                            f"got shape {np.shape(x)}.")
    return x.astype(np.int64)


def resample_counts(codes: np.ndarray, n_outcomes: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts of each outcome: ``codes`` ``(n,)`` in ``[0, n_outcomes)`` -> ``(n_resamples, n_outcomes)``.

    Each row is the outcome histogram of one resample of ``n`` samples drawn with replacement.
    """
    n = codes.shape[0]
    if n_outcomes <= _MULTINOMIAL_MAX_OUTCOMES:
        freq = np.bincount(codes, minlength=n_outcomes) / n
        return rng.multinomial(n, freq, size=n_resamples)
    out = np.empty((n_resamples, n_outcomes), dtype=np.int64)
    chunk = max(1, _CHUNK_INDICES // max(n, 1))
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))
        keys = np.take(codes, idx) + (np.arange(rows, dtype=np.int64) * n_outcomes)[:, None]
        out[start:start + rows] = np.bincount(keys.ravel(), minlength=rows * n_outcomes).reshape(rows, n_outcomes)
    return out


def resample_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Mean of ``values`` ``(n,)`` over each of ``n_resamples`` resamples (index matrix in chunks)."""
    n = values.shape[0]
    out = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _CHUNK_INDICES // max(n, 1))
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))  # int64: numpy's take gathers fastest with native indices
        out[start:start + rows] = np.take(values, idx).mean(axis=1)
    return out


def _label_metric_draws(metric: str, y: np.ndarray, pa: np.ndarray, pb: np.ndarray, n_classes: int,
                        n_resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Metric of A and of B on each resample, each ``(n_resamples,)``; the full-data values appended last."""
    n = y.shape[0]
    if metric == "accuracy":
        codes = (pa == y).astype(np.int64) * 2 + (pb == y)
        counts = np.vstack([resample_counts(codes, 4, n_resamples, rng), np.bincount(codes, minlength=4)])
        return (counts[:, 2] + counts[:, 3]) / n, (counts[:, 1] + counts[:, 3]) / n
    c = n_classes
    full = (y * c + pa) * c + pb
    outcomes, codes = np.unique(full, return_inverse=True)
    counts = np.vstack([resample_counts(codes.ravel(), len(outcomes), n_resamples, rng),
                        np.bincount(codes.ravel(), minlength=len(outcomes))]).astype(np.float64)
    t_k, b_k, a_k = outcomes // (c * c), outcomes % c, (outcomes // c) % c
    eye = np.eye(c)
    support = counts @ eye[t_k]
    values = []
    for p_k in (a_k, b_k):
        tp = counts @ (eye[t_k] * (t_k == p_k)[:, None])
        if metric == "macro_f1":
            values.append(macro_f1_from_counts(tp, counts @ eye[p_k], support))
        else:
            values.append(balanced_accuracy_from_counts(tp, support))
    return values[0], values[1]


def _per_sample_loss(metric: str, y: np.ndarray, proba: np.ndarray, name: str) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != y.shape[0]:
        raise AnalysisError(f"{name} must be (samples, classes) probabilities for {metric}; got shape {proba.shape}.")
    if metric == "log_loss":
        eps = np.finfo(np.float64).eps
        return nll_per_sample(y, np.log(np.clip(proba / proba.sum(axis=1, keepdims=True), eps, 1.0)))
    onehot = np.zeros_like(proba)
    onehot[np.arange(y.shape[0]), y] = 1.0
    return ((proba - onehot) ** 2).sum(axis=1)


def _checked_labels(y_true: np.ndarray, metric: str, confidence: float, n_resamples: int, who: str) -> np.ndarray:
    """``y_true`` as int64 after checking the arguments every bootstrap shares."""
    check_metric(metric)
    if not 0 < confidence < 1:
        raise AnalysisError(f"The 'confidence' parameter must be in (0, 1). Got {confidence!r} instead.")
    if n_resamples < 1:
        raise AnalysisError(f"The 'n_resamples' parameter must be at least 1. Got {n_resamples!r} instead.")
    y = np.asarray(y_true).astype(np.int64)
    if y.shape[0] == 0:
        raise AnalysisError(f"{who} needs at least one labelled sample.")
    if np.any(y < 0):
        raise AnalysisError(f"{who} needs labelled samples (a label is -1: test predictions have none).")
    return y


def paired_bootstrap(y_true: np.ndarray, a: np.ndarray, b: np.ndarray, *, metric: str = "accuracy",
                     n_classes: int | None = None, n_resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> BootstrapResult:
    """Difference ``metric(A) - metric(B)`` with a paired-bootstrap percentile interval.

    Args:
        y_true: ``(samples,)`` class indices.
        a, b: ``(samples,)`` predicted labels or ``(samples, classes)`` probabilities (needed for
            ``log_loss`` and ``brier``; the label metrics take the argmax).
        metric: one of :data:`BOOTSTRAP_METRICS`.
        n_classes: number of classes (default: inferred from the inputs).
    """
    y = _checked_labels(y_true, metric, confidence, n_resamples, "paired_bootstrap")
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    if metric in LABEL_METRICS:
        pa, pb = _as_labels(a, n, "a"), _as_labels(b, n, "b")
        c = n_classes or int(max(y.max(), pa.max(), pb.max()) + 1)
        if np.ndim(a) == 2:
            c = max(c, np.shape(a)[1])
        va, vb = _label_metric_draws(metric, y, pa, pb, c, n_resamples, rng)
        full_a, full_b = float(va[-1]), float(vb[-1])
        draws = va[:-1] - vb[:-1]
    else:
        la, lb = _per_sample_loss(metric, y, a, "a"), _per_sample_loss(metric, y, b, "b")
        full_a, full_b = float(la.mean()), float(lb.mean())
        draws = resample_means(la - lb, n_resamples, rng)
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(metric=metric, value_a=full_a, value_b=full_b, diff=full_a - full_b,
                           diff_range=(float(low), float(high)), share_above_zero=float(np.mean(draws > 0)),
                           confidence=confidence, n_resamples=int(n_resamples), n_samples=int(n), seed=int(seed))



def bootstrap_interval(y_true: np.ndarray, pred: np.ndarray, *, metric: str = "accuracy", n_classes: int | None = None,
                       n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(value, low, high)``: ``metric`` of one prediction on the full data and the percentile interval of its
    bootstrap resamples (how far the score could move on another draw of as many samples).

    ``pred`` is ``(samples,)`` labels or ``(samples, classes)`` probabilities (needed for log loss and Brier);
    the draws are the same as :func:`paired_bootstrap`'s, seeded.
    """
    y = _checked_labels(y_true, metric, confidence, n_resamples, "bootstrap_interval")
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    if metric in LABEL_METRICS:
        p = _as_labels(pred, n, "pred")
        c = max(n_classes or int(max(y.max(), p.max()) + 1), np.shape(pred)[1] if np.ndim(pred) == 2 else 0)
        values, _ = _label_metric_draws(metric, y, p, p, c, n_resamples, rng)
        full, draws = float(values[-1]), values[:-1]
    else:
        losses = _per_sample_loss(metric, y, pred, "pred")
        full, draws = float(losses.mean()), resample_means(losses, n_resamples, rng)
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return full, float(low), float(high)
