"""Figures of training runs (pure: data in, plotly figure out)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CURVE_METRICS = {
    "train_loss": "train loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "val_macro_f1": "validation macro-F1",
}


def learning_curves(metrics: pd.DataFrame, *, metric_names: tuple[str, ...] = ("train_loss", "val_loss",
                                                                                "val_accuracy")) -> go.Figure:
    """One panel per metric, one line per fold, epochs on x. ``metrics``: a run's metrics (engine.runs.read_metrics)."""
    names = [m for m in metric_names if m in metrics.columns]
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=[CURVE_METRICS.get(m, m) for m in names])
    palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"]
    for col, metric in enumerate(names, start=1):
        for i, (fold, rows) in enumerate(metrics.sort_values("epoch").groupby("fold", sort=True)):
            fig.add_trace(
                go.Scatter(x=rows["epoch"], y=rows[metric], mode="lines+markers", name=f"fold {fold}",
                           legendgroup=f"fold {fold}", showlegend=col == 1,
                           line={"color": palette[i % len(palette)]}),
                row=1, col=col,
            )
        fig.update_xaxes(title_text="epoch", dtick=1, row=1, col=col)
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig
