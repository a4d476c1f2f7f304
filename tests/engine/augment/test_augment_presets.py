"""Presets: every one builds, round-trips through albumentations and ends at the asked size."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from engine.augment import PRESET_NAMES, pipeline_from_dict, preset
from engine.errors import ConfigError


@pytest.mark.parametrize("name", PRESET_NAMES)
@pytest.mark.parametrize("size", [32, 96])
def test_preset_builds_and_outputs_size(name, size):
    spec = preset(name, size)
    assert set(spec) == {"__version__", "transform"}
    assert A.to_dict(A.from_dict(spec)) == spec
    pipeline = pipeline_from_dict(spec)
    pipeline.set_random_seed(0)
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for _ in range(10):
        out = pipeline(image=image)["image"]
        assert out.shape == (size, size, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_has_no_normalize_or_tensor(name):
    text = str(preset(name, 64))
    assert "Normalize" not in text and "ToTensor" not in text


def test_unknown_preset_lists_allowed():
    with pytest.raises(ConfigError, match="'none', 'light', 'medium', 'heavy'"):
        preset("extreme", 64)
    with pytest.raises(ConfigError, match="image_size"):
        preset("light", 0)
