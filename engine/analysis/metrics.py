"""Classification metrics on probabilities ``(samples, classes)`` or labels ``(samples,)``.

The single-prediction metrics call scikit-learn (its definitions are the reference); the ``batch_*``
functions score many label vectors at once against one ``y_true`` and are what the bootstrap and the
ensemble search use. Conventions, shared by both:

- labels are class indices ``0 .. C-1`` into the one ordered class list;
- macro-F1 averages over the classes present in ``y_true`` or in the predictions (scikit-learn's
  ``f1_score(average="macro")`` without ``labels``); a present class with no true positive scores 0.
  The training loop's ``val_macro_f1`` (metrics.csv) is :func:`score`'s, so the two never differ
  (docs/formats.md, "Metric definitions", says why this definition);
- log loss and Brier score take class probabilities; Brier is the multiclass sum over classes of
  ``(p - onehot)^2`` averaged over samples (for two classes it is twice the binary Brier score);
- ECE (expected calibration error) is top-label with 15 equal-width confidence bins over (0, 1]:
  ``sum_b n_b / n * |accuracy_b - mean confidence_b|``, a sample of confidence ``c`` falling in bin
  ``ceil(15 c) - 1`` (bin ``b`` holds ``(b/15, (b+1)/15]``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ECE_BINS = 15
METRIC_NAMES = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier", "ece")
LABEL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable softmax (float64): ``exp(z - max z) / sum``. Works on any shape, along ``axis``."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= np.sum(z, axis=axis, keepdims=True)
    return z


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable log-softmax (float64): ``z - logsumexp(z)`` along ``axis``."""
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def predict_labels(proba: np.ndarray) -> np.ndarray:
    """Predicted class per sample, ``argmax`` over the last axis (ties to the lowest class index)."""
    return np.argmax(proba, axis=-1)


# ------------------------------------------------------------------ single prediction (scikit-learn)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected on small slices
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class; ``proba`` is ``(samples, classes)``."""
    from sklearn.metrics import log_loss as _log_loss

    return float(_log_loss(y_true, proba, labels=np.arange(proba.shape[1])))


def brier(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass Brier score: mean over samples of ``sum_c (p_c - [y == c])^2``."""
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(y_true, proba, labels=np.arange(proba.shape[1]), scale_by_half=False))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix ``(C, C)``: rows are true classes, columns predicted classes."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per class: ``class``, ``precision``, ``recall``, ``f1``, ``support`` (true count), ``predicted``.

    A class never predicted has precision 0; a class absent from ``y_true`` has recall 0.
    """
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.arange(len(classes))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    predicted = np.bincount(np.asarray(y_pred), minlength=len(classes))[: len(classes)]
    return pd.DataFrame({"class": list(classes), "precision": p, "recall": r, "f1": f, "support": s,
                         "predicted": predicted})


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE with ``n_bins`` equal-width confidence bins (see the module docstring)."""
    table = reliability(y_true, proba, n_bins=n_bins)
    n = table["count"].sum()
    if n == 0:
        return float("nan")
    return float((table["count"] * (table["accuracy"] - table["confidence"]).abs()).fillna(0).sum() / n)


def _confidence_bin(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Reliability-diagram data: one row per confidence bin.

    Columns: ``bin``, ``lower``, ``upper`` (bin edges), ``count``, ``confidence`` (mean top-label
    probability in the bin), ``accuracy`` (share of the bin's samples predicted right); NaN where empty.
    """
    proba = np.asarray(proba, dtype=np.float64)
    conf = proba.max(axis=1)
    correct = (np.argmax(proba, axis=1) == np.asarray(y_true)).astype(np.float64)
    b = _confidence_bin(conf, n_bins)
    count = np.bincount(b, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:], "count": count,
                         "confidence": mean_conf, "accuracy": acc})


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of ``proba``: ``(samples,)``, between 0 and ``log C``."""
    p = np.asarray(proba, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def score(y_true: np.ndarray, *, proba: np.ndarray | None = None, y_pred: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` that the input allows, in one vectorized pass.

    With ``proba`` (samples, classes) all of them; with only ``y_pred`` (hard voting) the label
    metrics, and NaN for ``log_loss``, ``brier``, ``ece``. Same definitions as the scikit-learn-backed
    functions above (the tests hold them equal); this is what the comparison tables call, many times.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    if y_pred is None:
        if proba is None:
            raise ValueError("score() needs proba or y_pred")
        y_pred = predict_labels(proba)
    n_classes = int(max(y_true.max(initial=0), np.max(y_pred, initial=0)) + 1)
    if proba is not None:
        n_classes = max(n_classes, proba.shape[1])
    tp, predicted, support = class_counts(y_true, np.asarray(y_pred)[None, :], n_classes)
    out = {"accuracy": float(tp.sum() / max(len(y_true), 1)),
           "balanced_accuracy": float(balanced_accuracy_from_counts(tp, support[None, :])[0]),
           "macro_f1": float(macro_f1_from_counts(tp, predicted, support[None, :])[0])}
    if proba is None:
        return {**out, "log_loss": float("nan"), "brier": float("nan"), "ece": float("nan")}
    p = np.asarray(proba, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    eps = np.finfo(np.float64).eps  # scikit-learn's clipping of log_loss
    p_true = np.take_along_axis(p, y_true[:, None], axis=1)[:, 0]
    out["log_loss"] = float(-np.log(np.clip(p_true, eps, 1 - eps)).mean())
    out["brier"] = float(((p ** 2).sum(axis=1) - 2 * p_true + 1).mean())
    out["ece"] = expected_calibration_error(y_true, p)
    return out


# ------------------------------------------------------------------ batch versions (hot paths)


def macro_f1_from_counts(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Macro-F1 from per-class counts ``(..., C)``: true positives, predicted counts, true counts.

    F1 of a class is ``2 tp / (predicted + support)``; the mean runs over the classes with
    ``predicted + support > 0`` (scikit-learn's ``f1_score(average="macro")`` without ``labels``).
    """
    denom = predicted + support
    present = denom > 0
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(np.shape(tp), dtype=np.float64), where=present)
    return f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def balanced_accuracy_from_counts(tp: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Balanced accuracy from per-class counts ``(..., C)``: mean recall over classes with support."""
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(np.shape(tp), dtype=np.float64), where=present)
    return recall.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def class_counts(y_true: np.ndarray, preds: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class counts of many predictions at once.

    ``preds`` is ``(B, samples)`` label vectors; returns ``tp``, ``predicted`` (both ``(B, C)``) and
    ``support`` (``(C,)``), computed with one ``bincount`` each over ``(row, class)`` keys.
    """
    preds = np.atleast_2d(preds)
    b = preds.shape[0]
    offsets = (np.arange(b, dtype=np.int64) * n_classes)[:, None]
    predicted = np.bincount((preds + offsets).ravel(), minlength=b * n_classes).reshape(b, n_classes)
    keys = np.where(preds == y_true[None, :], preds + offsets, -1).ravel()
    tp = np.bincount(keys[keys >= 0], minlength=b * n_classes).reshape(b, n_classes)
    support = np.bincount(y_true, minlength=n_classes)
    return tp, predicted, support


def batch_accuracy(y_true: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Accuracy of each row of ``preds`` ``(B, samples)``: ``(B,)``."""
    return (np.atleast_2d(preds) == np.asarray(y_true)[None, :]).mean(axis=1)


def batch_macro_f1(y_true: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each row of ``preds`` ``(B, samples)``: ``(B,)`` (same definition as :func:`macro_f1`)."""
    tp, predicted, support = class_counts(np.asarray(y_true), preds, n_classes)
    return macro_f1_from_counts(tp, predicted, support[None, :])


def nll_per_sample(y_true: np.ndarray, log_proba: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of the true class per sample from log-probabilities ``(samples, classes)``."""
    return -np.take_along_axis(np.asarray(log_proba), np.asarray(y_true)[:, None], axis=1)[:, 0]
