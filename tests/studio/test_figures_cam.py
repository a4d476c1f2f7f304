"""Pure builders of the Grad-CAM page: tiles at display size, the colour scale, captions."""

from __future__ import annotations

import numpy as np

from studio.figures.cam import cam_tile, colorbar, enlarge, prediction_caption

CLASSES = ["cat", "dog", "fox"]


def test_tiles_are_drawn_at_display_size_keeping_the_aspect():
    image = np.zeros((32, 16, 3), np.uint8)
    assert enlarge(image, 160).shape == (160, 80, 3)
    tile = cam_tile(image, np.ones((4, 4), np.float32), side=160)
    assert tile.shape == (160, 80, 3) and tile.dtype == np.uint8
    assert tile[..., 0].mean() > tile[..., 2].mean()  # a hot map is red


def test_colorbar_runs_blue_to_red():
    bar = colorbar(100, 10)
    assert bar.shape == (10, 100, 3)
    assert bar[5, 0, 2] > bar[5, 0, 0] and bar[5, -1, 0] > bar[5, -1, 2]


def test_captions_say_right_or_wrong_and_which_class_the_map_explains():
    assert prediction_caption(CLASSES, 1, 0.874, true=1) == ":green[✓ predicted **dog** · 87%]"
    assert prediction_caption(CLASSES, 1, 0.5, true=2).startswith(":red[✗ predicted **dog**")
    assert prediction_caption(CLASSES, 0, 0.6) == "predicted **cat** · 60%"
    assert "map for class **fox**" in prediction_caption(CLASSES, 0, 0.6, target=2)
    assert "map for class" not in prediction_caption(CLASSES, 0, 0.6, target=0)
    assert "empty map" in prediction_caption(CLASSES, 0, 0.6, empty=True)
