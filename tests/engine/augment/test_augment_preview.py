"""Preview: reproducible draws with the parameters albumentations applied, and the TTA views."""

from __future__ import annotations

import numpy as np
import pytest

from engine.augment import Pipeline, apply_view_numpy, preset, preview_pipeline, tta_preview
from engine.augment.preview import describe_applied, image_seed
from engine.errors import ConfigError

IMAGES = [np.random.default_rng(i).integers(0, 256, (40 + i, 50, 3), dtype=np.uint8) for i in range(3)]


def _pixels(rows):
    return [d.image for row in rows for d in row.draws]


def test_same_seed_same_pixels_other_seed_other_pixels():
    spec = preset("heavy", 32)
    a = preview_pipeline(spec, IMAGES, draws=4, seed=7)
    b = preview_pipeline(spec, IMAGES, draws=4, seed=7)
    c = preview_pipeline(spec, IMAGES, draws=4, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(a), _pixels(b), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(_pixels(a), _pixels(c), strict=True))
    assert [d.applied for r in a for d in r.draws] == [d.applied for r in b for d in r.draws]
    # draws differ from each other within a row, and the original is shown unchanged
    assert not np.array_equal(a[0].draws[0].image, a[0].draws[1].image)
    assert np.array_equal(a[1].original, IMAGES[1])


def test_one_image_many_draws_matches_the_grid():
    grid = preview_pipeline(preset("medium", 32), IMAGES, draws=3, seed=5)
    single = preview_pipeline(preset("medium", 32), IMAGES[:1], draws=3, seed=5)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(grid[0].draws, single[0].draws, strict=True))
    assert image_seed(5, 0) != image_seed(5, 1)


def test_applied_parameters_are_albumentations_own():
    pipeline = (
        Pipeline().added("Affine").with_step(0, p=1.0, rotate=[10, 10]).added("HorizontalFlip").with_step(1, p=0.0)
    )
    draw = preview_pipeline(pipeline, IMAGES[:1], draws=1, seed=0)[0].draws[0]
    assert [name for name, _ in draw.applied] == ["Affine"]  # the flip did not fire
    assert draw.applied[0][1]["rotate"] == 10.0
    assert "Affine rotate=10.0 scale=" in draw.caption()
    assert describe_applied([]) == "no transform fired"
    assert draw.image.dtype == np.uint8 and draw.image.shape == (40, 50, 3)


def test_float_output_is_rescaled_for_display():
    draw = preview_pipeline(Pipeline().added("Normalize"), IMAGES[:1], draws=1, seed=0)[0].draws[0]
    assert draw.rescaled and draw.image.dtype == np.uint8 and draw.image.max() == 255


def test_failing_transform_is_named():
    crop = Pipeline().added("RandomCrop", image_size=64).with_step(0, pad_if_needed=False)
    with pytest.raises(ConfigError, match=r"RandomCrop failed on preview image 1 \(50x40\)"):
        preview_pipeline(crop, IMAGES, draws=1, seed=0)
    with pytest.raises(ConfigError, match="draws"):
        preview_pipeline(crop, IMAGES, draws=0, seed=0)


def test_tta_preview_is_the_prediction_op():
    views = ["identity", "hflip", "rot90", "transpose"]
    out = tta_preview(IMAGES[:2], views, image_size=24)
    assert len(out) == 2 and len(out[0]) == 4
    base = out[0][0]
    assert base.shape == (24, 24, 3)
    for view, shown in zip(views, out[0], strict=True):
        assert np.array_equal(shown, apply_view_numpy(base, view))
    with pytest.raises(ConfigError, match="views"):
        tta_preview(IMAGES, ["sideways"], image_size=24)
