"""The Review page's and the Submit page's figure builders (pure functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.figures.leaderboard import cv_lb_figure
from studio.figures.review import GIVEN_COLOR, SUGGESTED_COLOR, confidence_bars, noise_matrix_figure


def test_confidence_bars_show_the_top_classes_and_always_the_given_one():
    proba = np.array([0.02, 0.6, 0.2, 0.1, 0.05, 0.03])
    fig = confidence_bars(proba, [str(i) for i in range(6)], given=0, suggested=1, top=3)
    bar = fig.data[0]
    assert list(bar.y) == ["0 (given)", "2", "1 (suggested)"]  # ascending: plotly draws the last on top
    np.testing.assert_allclose(bar.x, [0.02, 0.2, 0.6])
    assert bar.marker.color[0] == GIVEN_COLOR and bar.marker.color[-1] == SUGGESTED_COLOR
    assert fig.layout.yaxis.type == "category"  # class names such as "3" are names, not numbers


def test_noise_matrix_figure_labels_its_axes():
    noise = pd.DataFrame([[0.9, 0.2], [0.1, 0.8]], index=["a", "b"], columns=["a", "b"])
    fig = noise_matrix_figure(noise)
    assert list(fig.data[0].y) == ["given a", "given b"] and list(fig.data[0].x) == ["true a", "true b"]


def test_cv_lb_figure_rings_the_points_outside_their_interval():
    frame = pd.DataFrame({
        "id": ["s1", "s2", "s3"], "lb": [0.9, 0.7, None], "lb_metric": ["accuracy"] * 3,
        "cv_holdout": [0.91, 0.9, 0.8], "cv_holdout_low": [0.88, 0.87, 0.7], "cv_holdout_high": [0.94, 0.93, 0.9],
        "cv_oof": [0.89, None, 0.8], "cv_oof_low": [None, None, 0.7], "cv_oof_high": [None, None, 0.9],
    })
    correlation = {"holdout": {"r": None, "n": 2, "metric": "accuracy"},
                   "oof": {"r": None, "n": 1, "metric": "accuracy"}}
    fig = cv_lb_figure(frame, correlation, "accuracy")
    holdout, oof, diagonal = fig.data
    assert list(holdout.customdata[:, 0]) == ["s1", "s2"] and list(oof.customdata[:, 0]) == ["s1"]
    assert list(holdout.marker.line.width) == [0, 3]  # s2: LB 0.7 below [0.87, 0.93]
    assert oof.marker.line.width[0] == 0  # an older sidecar without interval is not flagged by the chart
    assert diagonal.name == "LB = CV" and "r needs 3 points" in fig.layout.title.text
