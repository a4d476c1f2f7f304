"""The Data page's figure builders as pure functions: tables in, plotly figures out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studio.figures.data import (
    class_colors,
    class_distribution_figure,
    histogram_bins,
    metadata_figure,
    property_histogram_figure,
    split_distribution_figure,
)

DIST = pd.DataFrame({"label": ["a", "b", "c"], "count": [10, 30, 20], "share": [1 / 6, 0.5, 1 / 3]})


def test_class_colors_are_stable_and_distinct():
    colors = class_colors(["a", "b", "c"])
    assert list(colors) == ["a", "b", "c"] and len(set(colors.values())) == 3
    assert class_colors(["a", "b", "c"]) == colors
    assert len(set(class_colors([str(i) for i in range(30)]).values())) == 30
    assert len(set(class_colors([str(i) for i in range(40)]).values())) == 34  # then the palette cycles


def test_class_distribution_in_class_order_with_counts():
    fig = class_distribution_figure(DIST)
    bar = fig.data[0]
    assert list(bar.x) == ["a", "b", "c"] and list(bar.y) == [10, 30, 20]
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.title.text == "Images"
    assert list(bar.text) == ["10", "30", "20"]


def test_class_distribution_sorted_by_count_as_shares_on_log_scale():
    fig = class_distribution_figure(DIST, sort_by="count", shares=True, log_y=True)
    bar = fig.data[0]
    assert list(bar.x) == ["b", "c", "a"]
    np.testing.assert_allclose(bar.y, [50, 100 / 3, 100 / 6])
    assert fig.layout.yaxis.type == "log" and "%" in fig.layout.yaxis.title.text
    colors = class_colors(["a", "b", "c"])
    assert list(bar.marker.color) == [colors["b"], colors["c"], colors["a"]]  # a class keeps its colour


def test_class_distribution_rejects_an_unknown_sort():
    with pytest.raises(ValueError, match="sort_by must be one of"):
        class_distribution_figure(DIST, sort_by="size")


def test_split_distribution_stacks_shares_per_part():
    counts = pd.DataFrame({"a": [5, 5, 2], "b": [15, 5, 2]}, index=["fold 0", "fold 1", "holdout"])
    fig = split_distribution_figure(counts)
    assert [t.name for t in fig.data] == ["a", "b"] and fig.layout.barmode == "stack"
    totals = np.sum([np.asarray(t.y) for t in fig.data], axis=0)
    np.testing.assert_allclose(totals, 100)
    np.testing.assert_allclose(fig.data[0].y, [25, 50, 50])
    assert list(fig.data[0].customdata) == [5, 5, 2]  # the hover still tells the counts
    raw = split_distribution_figure(counts, shares=False)
    assert list(raw.data[1].y) == [15, 5, 2]


def test_metadata_figure_bars_and_heatmap():
    crosstab = pd.DataFrame({"a": [3, 1], "b": [1, 3]}, index=pd.Index(["young", "old"], name="age"))
    bars = metadata_figure(crosstab, column="age")
    assert bars.layout.barmode == "stack" and list(bars.data[0].x) == ["young", "old"]
    assert list(bars.data[0].y) == [3, 1]
    shares = metadata_figure(crosstab, column="age", normalize=True)
    np.testing.assert_allclose(shares.data[0].y, [75, 25])
    heat = metadata_figure(crosstab, column="age", kind="Heatmap")
    assert heat.data[0].type == "heatmap"
    assert np.asarray(heat.data[0].z).tolist() == [[3, 1], [1, 3]]
    assert list(heat.data[0].x) == ["a", "b"] and list(heat.data[0].y) == ["young", "old"]
    with pytest.raises(ValueError, match="kind must be one of"):
        metadata_figure(crosstab, column="age", kind="pie")


def test_histogram_bins():
    assert histogram_bins(np.array([32.0, 32.0])).tolist() == [31.5, 32.5]
    assert histogram_bins(np.array([1.0, 2.0, 4.0])).tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]  # one bin per integer
    edges = histogram_bins(np.array([0.0, 0.5, 1.0, np.nan]), bins=4)
    np.testing.assert_allclose(edges, [0, 0.25, 0.5, 0.75, 1.0])
    assert histogram_bins(np.array([np.nan])).tolist() == [0.0, 1.0]


def test_property_histogram_is_binned_per_class():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(50, 5, 300), rng.normal(150, 5, 200), [np.nan]])
    labels = np.array(["dark"] * 300 + ["light"] * 200 + ["light"])
    fig = property_histogram_figure(values, labels, prop="brightness", classes=["dark", "light"], bins=20)
    assert [t.name for t in fig.data] == ["dark", "light"]
    assert sum(fig.data[0].y) == 300 and sum(fig.data[1].y) == 200  # NaN (unreadable image) left out
    assert len(fig.data[0].x) == 20  # counts travel to the browser, not the 500 values
    assert "Brightness" in fig.layout.xaxis.title.text
    dark_peak = fig.data[0].x[int(np.argmax(fig.data[0].y))]
    light_peak = fig.data[1].x[int(np.argmax(fig.data[1].y))]
    assert dark_peak < 100 < light_peak
    only = property_histogram_figure(values, labels, prop="brightness", classes=["light"])
    assert [t.name for t in only.data] == ["light"]
