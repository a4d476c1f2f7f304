"""The sample grid's paths: a test image and a training image with the same id are different images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from engine.data import open_dataset
from engine.data import spec as dataset_spec  # not `import TestSpec`: pytest would try to collect it
from studio.widgets.samples import sample_paths


@pytest.fixture
def numbered_from_zero(tmp_path):
    """Kaggle-style ids: training rows 0..3 (id column) and test files 0.png..1.png (id = stem)."""
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "train" / f"img{i}.png")
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 255 - i, np.uint8)).save(tmp_path / "test" / f"{i}.png")
    pd.DataFrame({"id": [0, 1, 2, 3], "image": [f"img{i}.png" for i in range(4)],
                  "label": ["a", "b", "a", "b"]}).to_csv(tmp_path / "train.csv", index=False)
    spec = dataset_spec.DatasetSpec(
        name="numbered", layout="csv", test=dataset_spec.TestSpec(images="test"),
        train=dataset_spec.TrainSpec(images="train", csv="train.csv", path_column="image", label_column="label",
                                     id_column="id"))
    return open_dataset(dataset_spec.write_spec(spec, tmp_path / "dataset.yaml"))


def test_a_test_id_equal_to_a_training_id_shows_the_test_image(numbered_from_zero, tmp_path):
    ds = numbered_from_zero
    assert set(ds.manifest["sample_id"]) & set(ds.test_manifest["sample_id"]) == {"0", "1"}
    test = sample_paths(ds, "test")
    assert test == {"0": str(tmp_path / "test" / "0.png"), "1": str(tmp_path / "test" / "1.png")}
    for subset in ("holdout", "oof"):
        train = sample_paths(ds, subset)
        assert train["0"] == str(tmp_path / "train" / "img0.png") and len(train) == 4


def test_an_unknown_subset_is_refused():
    with pytest.raises(ValueError, match="'subset' parameter must be a str among"):
        sample_paths(None, "train")
