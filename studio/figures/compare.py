"""Figures of fold and ensemble comparisons (pure: frames from engine.analysis in, plotly figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

METRIC_LABELS = {
    "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1", "log_loss": "log loss",
    "brier": "Brier score", "ece": "ECE",
}


def fold_metric_bars(oof: pd.DataFrame, metric: str) -> go.Figure:
    """Per-fold bars of ``metric`` with the mean as a line and ±1 std band (the spread across folds)."""
    values = oof[metric].to_numpy(dtype=float)
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    labels = [f"fold {f}" for f in oof["fold"]]
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color="#2563eb", text=[f"{v:.3f}" for v in values],
                           textposition="outside", name=METRIC_LABELS.get(metric, metric)))
    fig.add_hrect(y0=mean - std, y1=mean + std, fillcolor="#93c5fd", opacity=0.25, line_width=0)
    fig.add_hline(y=mean, line_dash="dash", line_color="#1e3a8a",
                  annotation_text=f"mean {mean:.3f} ± {std:.3f}", annotation_position="top left")
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = max((hi - lo) * 0.6, 0.02)
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, showlegend=False,
                      yaxis_title=METRIC_LABELS.get(metric, metric),
                      yaxis_range=[max(lo - pad, 0.0) if metric != "log_loss" else 0.0, hi + pad])
    return fig


def matrix_heatmap(matrix: pd.DataFrame, *, title: str, zmin: float | None = None, zmax: float | None = None,
                   fmt: str = ".2f", colorscale: str = "Blues") -> go.Figure:
    """A labelled heatmap with the value written in each cell (agreement, correlation, confusion)."""
    z = matrix.to_numpy(dtype=float)
    text = [[format(v, fmt) for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in matrix.columns], y=[str(i) for i in matrix.index],
                               text=text, texttemplate="%{text}", colorscale=colorscale, zmin=zmin, zmax=zmax,
                               hovertemplate="%{y} / %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=title, height=max(260, 36 * len(matrix) + 120), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_yaxes(autorange="reversed")
    return fig


def confusion_heatmap(confusion: np.ndarray, classes: list[str], *, title: str, normalize: bool = True) -> go.Figure:
    """Confusion matrix (rows: true class, columns: predicted), row-normalized by default."""
    counts = np.asarray(confusion, dtype=float)
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0) if normalize else counts
    frame = pd.DataFrame(shown, index=[f"true {c}" for c in classes], columns=[f"pred {c}" for c in classes])
    fig = matrix_heatmap(frame, title=title, zmin=0.0, zmax=1.0 if normalize else None,
                         fmt=".2f" if normalize else ".0f")
    fig.update_traces(customdata=counts, hovertemplate="%{y} → %{x}: %{customdata:.0f} images<extra></extra>")
    return fig


def difference_intervals(frame: pd.DataFrame, *, label_column: str, title: str) -> go.Figure:
    """Point + 95% interval per row of a differences frame (``diff``, ``diff_low``, ``diff_high``), zero marked.

    An interval that crosses zero is drawn grey: that difference may be noise.
    """
    colors = ["#16a34a" if lo > 0 else "#dc2626" if hi < 0 else "#6b7280"
              for lo, hi in zip(frame["diff_low"], frame["diff_high"], strict=True)]
    fig = go.Figure(go.Scatter(
        x=frame["diff"], y=frame[label_column].astype(str), mode="markers", marker={"size": 11, "color": colors},
        error_x={"type": "data", "symmetric": False, "array": frame["diff_high"] - frame["diff"],
                 "arrayminus": frame["diff"] - frame["diff_low"], "color": "#374151"},
        hovertemplate="%{y}: %{x:+.4f}<extra></extra>"))
    fig.add_vline(x=0.0, line_color="#111827", line_width=1)
    fig.update_layout(title=title, height=max(220, 44 * len(frame) + 100), margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title="difference (95% paired-bootstrap interval)")
    return fig


def reliability_diagram(rows: pd.DataFrame, *, group_column: str, title: str) -> go.Figure:
    """Reliability curves overlaid: mean confidence vs accuracy per bin, one line per group; the diagonal is perfect."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#9ca3af"},
                               name="perfectly calibrated"))
    conf_col = "confidence" if "confidence" in rows.columns else "mean_confidence"
    acc_col = "accuracy" if "accuracy" in rows.columns else "mean_accuracy"
    for name, g in rows.groupby(group_column, sort=False):
        g = g[g["count"] > 0] if "count" in g.columns else g
        fig.add_trace(go.Scatter(x=g[conf_col], y=g[acc_col], mode="lines+markers", name=str(name)))
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title="confidence", yaxis_title="accuracy", xaxis_range=[0, 1], yaxis_range=[0, 1])
    return fig


def histogram_overlay(rows: pd.DataFrame, *, group_column: str, title: str, x_title: str) -> go.Figure:
    """Overlaid histograms from binned rows (``lower``, ``upper``, ``fraction``), one trace per group."""
    fig = go.Figure()
    for name, g in rows.groupby(group_column, sort=False):
        centers = (g["lower"] + g["upper"]) / 2
        fig.add_trace(go.Bar(x=centers, y=g["fraction"], width=(g["upper"] - g["lower"]), name=str(name),
                             opacity=0.55))
    fig.update_layout(title=title, barmode="overlay", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title=x_title, yaxis_title="share of samples")
    return fig


def share_comparison(shares: pd.DataFrame) -> go.Figure:
    """Grouped bars of class shares: one column per series (e.g. ``training``, ``submission``), index = class."""
    fig = go.Figure()
    colors = ["#94a3b8", "#2563eb", "#16a34a"]
    for i, column in enumerate(shares.columns):
        fig.add_trace(go.Bar(x=[str(c) for c in shares.index], y=shares[column], name=str(column),
                             marker_color=colors[i % len(colors)],
                             hovertemplate="class %{x}: %{y:.1%}<extra>" + str(column) + "</extra>"))
    fig.update_layout(barmode="group", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      yaxis_tickformat=".0%", yaxis_title="share of images", xaxis_title="class",
                      legend={"orientation": "h", "y": 1.1})
    return fig
