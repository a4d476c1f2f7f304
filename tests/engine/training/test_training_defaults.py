"""Defaults from the data and the model: image size and k."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from engine.errors import ConfigError
from engine.training.config import SplitConfig
from engine.training.defaults import (
    SIZE_MULTIPLE,
    default_image_size,
    default_k,
    round_to_multiple,
    typical_image_side,
)
from engine.training.splits import check_split_feasible


def write_images(folder, sizes: list[tuple[int, int]]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"img{i}.png"
        Image.new("RGB", (w, h), (i, 0, 0)).save(path)
        paths.append(str(path))
    return paths


def test_typical_side_is_the_median_shorter_side_from_headers_or_the_scan(tmp_path):
    paths = write_images(tmp_path / "imgs", [(64, 48), (60, 80), (100, 70), (90, 90), (40, 200)])
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not an image")
    assert typical_image_side([*paths, str(tmp_path / "imgs" / "broken.png")]) == 60  # shorter sides 48 60 70 90 40
    scan = pd.DataFrame({"width": [10, 20, None], "height": [30, 5, 7]})
    assert typical_image_side([], scan=scan) == 8  # min sides 10, 5 -> median 7.5, the unreadable row left out
    assert typical_image_side([str(tmp_path / "imgs" / "broken.png")]) is None


def test_header_sample_is_seeded_and_bounded(tmp_path):
    paths = write_images(tmp_path / "imgs", [(16 + i, 16 + i) for i in range(30)])
    assert typical_image_side(paths, sample=7, seed=1) == typical_image_side(paths, sample=7, seed=1)
    assert 16 <= typical_image_side(paths, sample=7, seed=1) <= 45


@pytest.mark.parametrize("side, expected", [(8, 32), (28, 32), (47, 32), (48, 64), (64, 64), (300, 288), (500, 512)])
def test_sizes_round_to_the_nearest_multiple_of_32(side, expected):
    assert round_to_multiple(side) == expected and expected % SIZE_MULTIPLE == 0


def test_image_size_defaults_from_the_data_or_the_models_pretrained_config():
    scratch = default_image_size("test_resnet", "none", 64)
    assert scratch.size == 64 and "median shorter side (64 px)" in scratch.rule
    pretrained = default_image_size("test_resnet", "hub", 64)
    assert pretrained.size == 160 and "pretrained" in pretrained.rule  # timm: test_resnet.r160_in1k
    fixed = default_image_size("vit_small_patch16_224", "none", 64)
    assert fixed.size == 224 and "only takes its own input size" in fixed.rule
    assert default_image_size("convnext_tiny", "none", None).size == 224  # no readable image: the model's size


def test_the_demo_dataset_gets_its_own_32_px(demo_dataset):
    side = typical_image_side(demo_dataset.manifest["path"].tolist())
    assert side == 32 and default_image_size("test_efficientnet", "none", side).size == 32


def manifest_with(counts: dict[str, int]) -> pd.DataFrame:
    labels = [c for c, n in counts.items() for _ in range(n)]
    return pd.DataFrame({"sample_id": [f"s{i:04d}" for i in range(len(labels))], "label": labels,
                         "path": [f"/x/{i}.png" for i in range(len(labels))]})


def test_k_defaults_to_5_when_it_fits():
    chosen = default_k(manifest_with({"a": 40, "b": 30}))
    assert (chosen.k, chosen.reason) == (5, None)


def test_k_defaults_to_the_largest_the_smallest_class_allows_and_says_why():
    manifest = manifest_with({"common": 60, "rare": 4})
    chosen = default_k(manifest, holdout_fraction=0.1)
    assert 2 <= chosen.k < 5
    check_split_feasible(manifest, SplitConfig(k=chosen.k, holdout_fraction=0.1))
    with pytest.raises(ConfigError):
        check_split_feasible(manifest, SplitConfig(k=chosen.k + 1, holdout_fraction=0.1))
    assert f"k={chosen.k} instead of the usual 5" in chosen.reason and "'rare'" in chosen.reason


def test_k_when_nothing_fits_says_so():
    chosen = default_k(manifest_with({"common": 60, "alone": 1}), holdout_fraction=0.0)
    assert chosen.k == 2 and "Not even k=2" in chosen.reason and "'alone'" in chosen.reason


def test_k_is_the_smallest_class_without_a_holdout():
    chosen = default_k(manifest_with({"a": 50, "b": 3}), holdout_fraction=0.0)
    assert chosen.k == 3 and "'b' has 3" in chosen.reason
