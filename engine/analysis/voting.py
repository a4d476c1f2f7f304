"""Combining the predictions of several models: soft, logit-mean, geometric and hard voting.

Inputs are stacked per model: probabilities or logits ``(models, samples, classes)``, labels
``(models, samples)``; ``weights`` is ``(models,)`` of non-negative numbers (default: all 1).

- :func:`soft_vote`: weighted mean of probabilities (scikit-learn ``VotingClassifier(voting="soft")``).
- :func:`logit_mean`: softmax of the weighted mean of logits.
- :func:`geometric_mean`: renormalised weighted geometric mean of probabilities. For softmax outputs
  it equals :func:`logit_mean` exactly (the per-model normalisers cancel), so it only differs from
  it on probabilities that were not produced by a softmax (e.g. after a TTA ``mean`` merge).
- :func:`hard_vote`: weighted majority of predicted labels. **Tie rule:** the lowest class index
  among the classes with the most votes wins — ``argmax(bincount(labels, weights))``, exactly
  scikit-learn's ``VotingClassifier(voting="hard")``.

The predicted class of a combined probability output is the lowest class index among the classes
within :data:`TIE_TOLERANCE` (1e-12) of the top probability (:func:`top_class`): a tie stays a tie
whatever order the floating-point sums ran in, so the ensemble search, the studio and a submission
always name the same class. Away from such rounding-level ties this is scikit-learn's ``argmax``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.analysis.metrics import log_softmax, predict_labels, softmax
from engine.errors import AnalysisError

VOTING_KINDS = ("soft", "hard", "logit_mean", "geometric")
TIE_TOLERANCE = 1e-12


def top_class(scores: np.ndarray, *, tol: float = TIE_TOLERANCE) -> np.ndarray:
    """Lowest index among the entries within ``tol`` of each row's maximum: ``(..., classes)`` -> ``(...)``."""
    scores = np.asarray(scores)
    return np.argmax(scores >= scores.max(axis=-1, keepdims=True) - tol, axis=-1)


def check_voting(voting: str) -> str:
    if voting not in VOTING_KINDS:
        raise AnalysisError(f"The 'voting' parameter must be a str among {list(VOTING_KINDS)}. Got {voting!r} instead.")
    return voting


def normalize_weights(weights: Sequence[float] | np.ndarray | None, n_models: int) -> np.ndarray:
    """``weights`` as a float64 ``(models,)`` array (all ones when None); refuses bad shapes and signs."""
    if weights is None:
        return np.ones(n_models, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_models:
        raise AnalysisError(f"The 'weights' parameter must have one weight per model ({n_models}). Got {w.shape[0]}.")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise AnalysisError(f"The 'weights' must be finite, non-negative and not all zero. Got {w.tolist()}.")
    return w


def _stacked(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise AnalysisError(f"{what} must be (models, samples, classes); got shape {x.shape}.")
    if x.shape[0] == 0:
        raise AnalysisError(f"{what} holds no model to vote with.")
    return x


def soft_vote(proba: np.ndarray, weights=None) -> np.ndarray:
    """Weighted mean of probabilities ``(models, samples, classes)`` -> ``(samples, classes)``."""
    proba = _stacked(proba, "proba")
    w = normalize_weights(weights, proba.shape[0])
    return np.tensordot(w / w.sum(), proba.astype(np.float64, copy=False), axes=(0, 0))


def logit_mean(logits: np.ndarray, weights=None) -> np.ndarray:
    """Softmax of the weighted mean of logits ``(models, samples, classes)`` -> probabilities."""
    logits = _stacked(logits, "logits")
    w = normalize_weights(weights, logits.shape[0])
    return softmax(np.tensordot(w / w.sum(), logits.astype(np.float64, copy=False), axes=(0, 0)))


def geometric_mean(proba: np.ndarray, weights=None) -> np.ndarray:
    """Renormalised weighted geometric mean of probabilities -> ``(samples, classes)``.

    Computed in log space (``softmax(sum_m w_m log p_m / sum w)``); a zero probability stays zero.
    """
    proba = _stacked(proba, "proba")
    w = normalize_weights(weights, proba.shape[0])
    with np.errstate(divide="ignore"):
        logp = np.log(proba.astype(np.float64, copy=False))
    mixed = np.tensordot(w / w.sum(), np.where(np.isneginf(logp), -1e300, logp), axes=(0, 0))
    return softmax(mixed)


def vote_counts(labels: np.ndarray, n_classes: int, weights=None) -> np.ndarray:
    """Weighted votes per class: labels ``(models, samples)`` -> ``(samples, classes)`` float64.

    Votes are added model by model in order, the same summation order as ``np.bincount``, so weighted
    ties are decided exactly as scikit-learn decides them.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise AnalysisError(f"labels must be (models, samples) with at least one model; got shape {labels.shape}.")
    w = normalize_weights(weights, labels.shape[0])
    n = labels.shape[1]
    counts = np.zeros((n, n_classes), dtype=np.float64)
    rows = np.arange(n)
    for m in range(labels.shape[0]):  # a loop over models, never over samples
        counts[rows, labels[m]] += w[m]
    return counts


def hard_vote(labels: np.ndarray, n_classes: int, weights=None) -> np.ndarray:
    """Weighted majority of predicted labels ``(models, samples)`` -> ``(samples,)``; ties to the lowest index."""
    return np.argmax(vote_counts(labels, n_classes, weights), axis=1)


def combine(logits: np.ndarray, voting: str, weights=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Combine models' logits ``(models, samples, classes)`` by ``voting``.

    Returns ``(labels, proba)``: the predicted class per sample and, for the probability rules
    (``soft``, ``logit_mean``, ``geometric``), the combined probabilities; ``proba`` is None for
    ``hard``, which has no probabilities (its vote shares are not calibrated).
    """
    check_voting(voting)
    logits = _stacked(logits, "logits")
    if voting == "hard":
        return hard_vote(predict_labels(logits), logits.shape[2], weights), None
    if voting == "soft":
        proba = soft_vote(softmax(logits), weights)
    elif voting == "logit_mean":
        proba = logit_mean(logits, weights)
    else:
        w = normalize_weights(weights, logits.shape[0])
        proba = softmax(np.tensordot(w / w.sum(), log_softmax(logits), axes=(0, 0)))
    return top_class(proba), proba
