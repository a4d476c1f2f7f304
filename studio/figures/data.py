"""Figures of the Data page. Pure: tables in, plotly figure out (no Streamlit, no file access).

Every figure colours a class the same way (:func:`class_colors`), so class "3" is one colour
throughout the page.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

SORT_OPTIONS = ("class", "count")
META_KINDS = ("Stacked bars", "Heatmap")
# Scan columns drawn as histograms, with the words a person reads on the axis.
PROPERTY_LABELS = {
    "width": "Width (pixels)",
    "height": "Height (pixels)",
    "aspect": "Aspect ratio (width / height)",
    "brightness": "Brightness (mean of pixel values, 0-255)",
}
_MARGIN = dict(l=10, r=10, t=40, b=10)


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """One colour per class, in class order (34 distinct colours, then the palette cycles)."""
    palette = qualitative.Plotly + qualitative.Light24 if len(classes) > 10 else qualitative.Plotly
    return {str(c): palette[i % len(palette)] for i, c in enumerate(classes)}


def class_distribution_figure(dist: pd.DataFrame, *, sort_by: str = "class", shares: bool = False,
                              log_y: bool = False, colors: dict[str, str] | None = None) -> go.Figure:
    """Bar chart of images per class.

    ``dist``: columns ``label``, ``count``, ``share`` (share in 0..1), rows in class order.
    ``sort_by``: ``"class"`` keeps the given order, ``"count"`` puts the largest class first.
    """
    if sort_by not in SORT_OPTIONS:
        raise ValueError(f"sort_by must be one of {SORT_OPTIONS}; got {sort_by!r}.")
    frame = dist.sort_values("count", ascending=False, kind="stable") if sort_by == "count" else dist
    labels = frame["label"].astype(str).tolist()
    y = frame["share"] * 100 if shares else frame["count"]
    colors = colors or class_colors(dist["label"].astype(str).tolist())
    fig = go.Figure(go.Bar(
        x=labels, y=y, marker_color=[colors.get(lbl, "#888") for lbl in labels],
        customdata=np.stack([frame["count"], frame["share"] * 100], axis=1),
        hovertemplate="class %{x}<br>%{customdata[0]:,} images (%{customdata[1]:.1f}%)<extra></extra>",
        text=[f"{v:.1f}%" for v in y] if shares else [f"{int(v):,}" for v in y], textposition="outside",
        cliponaxis=False,
    ))
    fig.update_layout(
        title="Images per class", margin=_MARGIN, showlegend=False, bargap=0.2,
        xaxis=dict(title="Class", type="category"),
        yaxis=dict(title="Share of images (%)" if shares else "Images", type="log" if log_y else "linear"),
    )
    return fig


def split_distribution_figure(counts: pd.DataFrame, *, shares: bool = True,
                              colors: dict[str, str] | None = None) -> go.Figure:
    """Class make-up of each fold and of the holdout.

    ``counts``: index = part names in display order ("fold 0", ..., "holdout"), columns = class labels,
    values = image counts. With ``shares``, each part's bar adds up to 100 %, so folds compare at a glance.
    """
    values = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0) * 100 if shares else counts
    colors = colors or class_colors([str(c) for c in counts.columns])
    fig = go.Figure()
    for label in counts.columns:
        fig.add_bar(
            name=str(label), x=[str(i) for i in counts.index], y=values[label],
            marker_color=colors.get(str(label), "#888"), customdata=counts[label],
            hovertemplate=f"class {label}<br>%{{x}}: %{{customdata:,}} images" + (" (%{y:.1f}%)" if shares else "")
            + "<extra></extra>",
        )
    fig.update_layout(
        barmode="stack", title="Class make-up of each fold and the holdout", margin=_MARGIN,
        xaxis=dict(title=None, type="category"), legend=dict(title="Class"),
        yaxis=dict(title="Share of the part's images (%)" if shares else "Images"),
    )
    return fig


def metadata_figure(crosstab: pd.DataFrame, *, column: str, kind: str = "Stacked bars", normalize: bool = False,
                    colors: dict[str, str] | None = None) -> go.Figure:
    """A metadata column against the label.

    ``crosstab``: index = the metadata column's values, columns = class labels, values = image counts.
    ``kind``: ``"Stacked bars"`` (one bar per metadata value, stacked by class) or ``"Heatmap"``.
    ``normalize``: shares of each metadata value's images (rows add up to 100 %) instead of counts.
    """
    if kind not in META_KINDS:
        raise ValueError(f"kind must be one of {META_KINDS}; got {kind!r}.")
    counts = crosstab.fillna(0)
    values = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0) * 100 if normalize else counts
    rows = [str(i) for i in counts.index]
    unit = "%" if normalize else " images"
    if kind == "Heatmap":
        text = values.map(lambda v: f"{v:.0f}%" if normalize else f"{int(v):,}").to_numpy()
        fig = go.Figure(go.Heatmap(
            z=values.to_numpy(), x=[str(c) for c in counts.columns], y=rows, colorscale="Blues",
            text=text, texttemplate="%{text}" if values.size <= 400 else None,
            colorbar=dict(title="%" if normalize else "Images"),
            hovertemplate=f"{column} = %{{y}}<br>class %{{x}}<br>%{{z:,.1f}}{unit}<extra></extra>",
        ))
        fig.update_layout(xaxis=dict(title="Class", type="category"),
                          yaxis=dict(title=column, type="category", autorange="reversed"))
    else:
        colors = colors or class_colors([str(c) for c in counts.columns])
        fig = go.Figure()
        for label in counts.columns:
            fig.add_bar(name=str(label), x=rows, y=values[label], marker_color=colors.get(str(label), "#888"),
                        hovertemplate=f"class {label}<br>{column} = %{{x}}<br>%{{y:,.1f}}{unit}<extra></extra>")
        fig.update_layout(barmode="stack", legend=dict(title="Class"),
                          xaxis=dict(title=column, type="category"),
                          yaxis=dict(title="Share of the value's images (%)" if normalize else "Images"))
    fig.update_layout(title=f"{column} against the class", margin=_MARGIN)
    return fig


def histogram_bins(values: np.ndarray, *, bins: int = 30) -> np.ndarray:
    """Shared bin edges for a property: integer-wide bins for integer data with few distinct values."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.array([0.0, 1.0])
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    if np.all(np.mod(finite, 1) == 0) and hi - lo + 1 <= bins:
        return np.arange(lo - 0.5, hi + 1.5)
    return np.linspace(lo, hi, bins + 1)


def property_histogram_figure(values: np.ndarray, labels: np.ndarray, *, prop: str, classes: Sequence[str],
                              bins: int = 30, colors: dict[str, str] | None = None) -> go.Figure:
    """Histogram of one image property, stacked by class, binned here (the browser gets counts, not 20,000 values).

    ``values``: shape (n,) float, the property per image (NaN for images that could not be read);
    ``labels``: shape (n,) str, the class of each image; ``classes``: the classes to draw, in order.
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels).astype(str)
    edges = histogram_bins(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    colors = colors or class_colors(list(classes))
    fig = go.Figure()
    for label in classes:
        picked = values[(labels == str(label)) & np.isfinite(values)]
        counts, _ = np.histogram(picked, bins=edges)
        lows, highs = edges[:-1], edges[1:]
        fig.add_bar(
            name=str(label), x=centers, y=counts, width=width, marker_color=colors.get(str(label), "#888"),
            customdata=np.stack([lows, highs], axis=1),
            hovertemplate=f"class {label}<br>%{{customdata[0]:.4g}} to %{{customdata[1]:.4g}}: %{{y:,}} images"
            "<extra></extra>",
        )
    axis = PROPERTY_LABELS.get(prop, prop)
    fig.update_layout(barmode="stack", bargap=0.05, title=f"{axis.split(' (')[0]} by class", margin=_MARGIN,
                      xaxis=dict(title=axis), yaxis=dict(title="Images"), legend=dict(title="Class"))
    return fig
