"""The CV-against-leaderboard chart of the Submit page (pure: the submissions table in, a plotly figure out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from studio.figures.compare import METRIC_LABELS

SERIES = {"holdout": ("#2563eb", "circle"), "oof": ("#f59e0b", "diamond")}


def cv_lb_figure(submissions: pd.DataFrame, correlation: dict[str, dict], metric: str) -> go.Figure:
    """One point per submission and CV subset (holdout, OOF): x its CV score with the 95% bootstrap interval the
    sidecar holds, y its public-leaderboard score. The diagonal is LB = CV; a point ringed red lies outside its
    interval. The title carries each subset's Pearson r."""
    rows = submissions[submissions["lb"].notna() & (submissions["lb_metric"] == metric)]
    fig = go.Figure()
    values = []
    for subset, (color, symbol) in SERIES.items():
        part = rows[rows[f"cv_{subset}"].notna()]
        if part.empty:
            continue
        x = part[f"cv_{subset}"].astype(float)
        low = part[f"cv_{subset}_low"].astype(float)
        high = part[f"cv_{subset}_high"].astype(float)
        flagged = (part["lb"] < low) | (part["lb"] > high)
        values += [*x, *part["lb"].astype(float), *low.dropna(), *high.dropna()]
        fig.add_trace(go.Scatter(
            x=x, y=part["lb"], mode="markers", name=f"CV on {subset}",
            marker={"size": 11, "color": color, "symbol": symbol,
                    "line": {"width": np.where(flagged, 3, 0), "color": "#dc2626"}},
            error_x={"type": "data", "symmetric": False, "array": (high - x).fillna(0),
                     "arrayminus": (x - low).fillna(0), "color": color, "thickness": 1.2},
            customdata=np.stack([part["id"], np.where(flagged, "outside the CV interval", "")], axis=1),
            hovertemplate="%{customdata[0]}<br>CV %{x:.4f} · LB %{y:.4f}<br>%{customdata[1]}<extra></extra>"))
    if values:
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = max((hi - lo) * 0.08, 0.005)
        fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name="LB = CV",
                                 line={"dash": "dot", "color": "#9ca3af"}, hoverinfo="skip"))
    label = METRIC_LABELS.get(metric, metric)
    parts = [f"{s}: r = {c['r']:+.2f} (n={c['n']})" if c["r"] is not None else f"{s}: r needs 3 points (n={c['n']})"
             for s, c in correlation.items()]
    fig.update_layout(title=f"CV vs public leaderboard ({label}) — " + "; ".join(parts), height=420,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, xaxis_title=f"CV {label} (95% bootstrap interval)",
                      yaxis_title=f"public LB {label}", legend={"orientation": "h", "y": -0.2})
    return fig
