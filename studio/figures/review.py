"""Figures of the Review page (pure: arrays and labels in, plotly figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from studio.figures.compare import matrix_heatmap

GIVEN_COLOR = "#dc2626"
SUGGESTED_COLOR = "#16a34a"
OTHER_COLOR = "#94a3b8"


def confidence_bars(proba: np.ndarray, classes: list[str], *, given: int, suggested: int, top: int = 4) -> go.Figure:
    """The out-of-sample probability of the ``top`` most probable classes (and of the given one, always shown),
    as horizontal bars: the given label red, the suggested one green."""
    proba = np.asarray(proba, dtype=float)
    order = [int(i) for i in np.argsort(-proba, kind="stable")[:top]]
    if given not in order:
        order[-1] = given
    order = sorted(order, key=lambda i: proba[i])  # plotly draws the last bar at the top
    colors = [GIVEN_COLOR if i == given else SUGGESTED_COLOR if i == suggested else OTHER_COLOR for i in order]
    names = [f"{classes[i]}{' (given)' if i == given else ' (suggested)' if i == suggested else ''}" for i in order]
    fig = go.Figure(go.Bar(x=proba[order], y=names, orientation="h", marker_color=colors,
                           text=[f"{proba[i]:.0%}" for i in order], textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=40 + 26 * len(order), margin={"l": 4, "r": 36, "t": 4, "b": 4}, showlegend=False,
                      xaxis={"range": [0, 1.0], "visible": False}, bargap=0.25,
                      yaxis={"automargin": True, "type": "category"})  # class names like "3" stay names
    return fig


def noise_matrix_figure(noise: pd.DataFrame) -> go.Figure:
    """The estimated noise matrix P(given | true): rows the given label, columns the true one."""
    frame = noise.copy()
    frame.index = [f"given {c}" for c in noise.index]
    frame.columns = [f"true {c}" for c in noise.columns]
    fig = matrix_heatmap(frame, title="Estimated noise matrix P(given label | true label)", zmin=0.0, zmax=1.0,
                         fmt=".2f", colorscale="Oranges")
    fig.update_traces(hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>")
    return fig
