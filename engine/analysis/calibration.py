"""Temperature scaling (Guo et al., 2017) and the calibration views the studio draws.

Temperature scaling divides logits by one scalar ``T`` fitted to minimise the negative
log-likelihood on labelled predictions (OOF here). It never changes the argmax, so accuracy and
macro-F1 stay put while log loss and ECE move: it separates calibration from accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.analysis.metrics import ECE_BINS, entropy, log_softmax, nll_per_sample
from engine.errors import AnalysisError

# log T is searched on [log 0.05, log 20]: wide enough for any trained network's logits.
_LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


def nll_at_temperature(logits: np.ndarray, y_true: np.ndarray, temperature: float) -> float:
    """Mean NLL of ``softmax(logits / T)`` ``(samples, classes)`` for labels ``y_true``."""
    return float(nll_per_sample(y_true, log_softmax(np.asarray(logits, dtype=np.float64) / temperature)).mean())


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature ``T > 0`` minimising NLL of ``softmax(logits / T)``: a bounded 1-D search on ``log T``."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true).astype(np.int64)
    if logits.ndim != 2 or logits.shape[0] != y.shape[0] or logits.shape[0] == 0:
        raise AnalysisError(f"fit_temperature needs logits (samples, classes) and labels (samples,); got "
                            f"{logits.shape} and {y.shape}.")
    if np.any(y < 0):
        raise AnalysisError("fit_temperature needs labelled samples (OOF or holdout), not test predictions.")
    res = minimize_scalar(lambda log_t: nll_at_temperature(logits, y, float(np.exp(log_t))),
                          bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5})
    return float(np.exp(res.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Log-probabilities of ``softmax(logits / T)``."""
    if not temperature > 0:
        raise AnalysisError(f"The temperature must be positive. Got {temperature!r}.")
    return log_softmax(np.asarray(logits, dtype=np.float64) / temperature)


def histogram(values: np.ndarray, *, bins: int, value_range: tuple[float, float]) -> pd.DataFrame:
    """Histogram as a frame: ``lower``, ``upper``, ``count``, ``fraction`` (of all values)."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins, range=value_range)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": counts, "fraction": counts / total})


def confidence_histogram(proba: np.ndarray, *, bins: int = ECE_BINS) -> pd.DataFrame:
    """Histogram of the top-label probability over ``[0, 1]`` (same bins as the reliability diagram)."""
    return histogram(np.max(proba, axis=1), bins=bins, value_range=(0.0, 1.0))


def entropy_histogram(proba: np.ndarray, *, bins: int = 20) -> pd.DataFrame:
    """Histogram of the predictive entropy (nats) over ``[0, log C]``."""
    return histogram(entropy(proba), bins=bins, value_range=(0.0, float(np.log(proba.shape[1]))))
