"""Which images to explain: a model's mistakes, its least confident calls, or a few of every class.

Works on one model's predictions of labelled samples: logits (N, C) and true labels (N,). Vectorized;
returns row indices into those arrays, in the order to show them.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError

SAMPLE_SOURCES: dict[str, str] = {
    "misclassified": "the model's mistakes, most confident first",
    "least_confident": "the model's least confident calls (lowest top probability), right or wrong",
    "random_per_class": "a random pick from every class, in class order",
}


def list_sample_sources() -> list[str]:
    return list(SAMPLE_SOURCES)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, computed stably in float64; returns float64 (N, C)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def select_samples(logits: np.ndarray, labels: np.ndarray, *, source: str, n: int, seed: int = 0) -> np.ndarray:
    """Row indices of up to ``n`` samples to explain, in display order.

    ``misclassified``: predicted != label, by descending confidence (the confident mistakes first);
    ``least_confident``: by ascending top probability; ``random_per_class``: ``ceil(n / classes present)``
    per class drawn with ``seed``, interleaved class by class (0, 1, 2, ..., 0, 1, ...), then cut to ``n``.
    Ties keep the input order. Returns int64 (k,), k <= n (empty when nothing qualifies).
    """
    if source not in SAMPLE_SOURCES:
        raise ConfigError(f"The 'source' parameter must be a str among {list(SAMPLE_SOURCES)}. Got {source!r} instead.")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"The 'n' parameter must be a positive int. Got {n!r} instead.")
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ConfigError(f"Expected logits (N, C) and labels (N,); got {logits.shape} and {labels.shape}.")
    if logits.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    probs = softmax(logits)
    confidence = probs.max(axis=1)
    if source == "misclassified":
        wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
        order = wrong[np.argsort(-confidence[wrong], kind="stable")]
    elif source == "least_confident":
        order = np.argsort(confidence, kind="stable")
    else:
        rng = np.random.default_rng(seed)
        shuffled = rng.permutation(len(labels))
        by_class = shuffled[np.argsort(labels[shuffled], kind="stable")]  # each class's rows, shuffled
        classes, starts = np.unique(labels[by_class], return_index=True)
        rank = np.arange(len(by_class)) - np.repeat(starts, np.diff(np.append(starts, len(by_class))))
        per_class = -(-n // len(classes))
        keep = rank < per_class
        order = by_class[keep][np.lexsort((labels[by_class][keep], rank[keep]))]
    return order[:n].astype(np.int64)
