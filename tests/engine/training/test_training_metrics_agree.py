"""metrics.csv (the Train page, ``runs``) and the Folds page (``compare_folds``) score a fold the same way."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.analysis import compare_folds
from engine.data.spec import DatasetSpec, TrainSpec, write_spec
from engine.io import atomic_write_parquet
from engine.runs import store
from engine.training.config import load_run_configs
from engine.training.create import create_runs
from engine.training.fit import train_run
from engine.training.loop import classification_metrics

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def colour_dataset(root, per_class: int = 8):
    """Flat-colour 16 px squares with noise, one folder per class (classes sorted: blue, green, red)."""
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}{i}.png")
    return write_spec(DatasetSpec(name="colours", layout="folder", train=TrainSpec(images="train")),
                      root / "dataset.yaml")


def test_perfect_prediction_on_a_fold_missing_a_class_scores_one():
    logits = np.eye(3, dtype=np.float32)[[0, 1, 0, 1]] * 5  # class 2 neither true nor predicted
    assert classification_metrics(logits, np.array([0, 1, 0, 1]), 3)["val_macro_f1"] == pytest.approx(1.0)


def test_metrics_csv_equals_the_folds_page_when_a_class_is_absent_from_the_validation_fold(tmp_path):
    spec_path = colour_dataset(tmp_path / "colours")
    cfg = {"dataset": str(spec_path), "model": {"name": "test_resnet"}, "image_size": 16, "device": "cpu",
           "split": {"k": 2, "seed": 0, "holdout_fraction": 0.0}, "tta_views": ["identity"],
           "train": {"epochs": 2, "batch_size": 8, "lr": 1e-2, "weight_decay": 0.0, "num_workers": 0,
                     "monitor": "val_macro_f1"}}
    (run_dir,) = create_runs(load_run_configs(cfg), workspace=tmp_path / "ws")
    split = store.read_split(run_dir)
    # fold 0 validates on half of blue and green only; every red image is in fold 1
    label = split["sample_id"].str.extract(r"^(blue|green|red)")[0]
    index = split["sample_id"].str.extract(r"(\d+)\.png$")[0].astype(int)
    split["fold"] = np.where((label != "red") & (index % 2 == 0), 0, 1)
    atomic_write_parquet(run_dir / store.SPLIT_FILE, split)

    train_run(run_dir, folds=[0], device="cpu")

    metrics = store.read_metrics(run_dir)
    fold0 = metrics[metrics["fold"] == 0].reset_index(drop=True)
    best = fold0.loc[fold0["val_macro_f1"].idxmax()]  # the epoch whose weights predicted OOF (first maximum)
    oof = compare_folds(run_dir).oof.set_index("fold")
    assert list(oof.index) == [0] and int(oof.loc[0, "n"]) == 8
    assert best["val_macro_f1"] == pytest.approx(oof.loc[0, "macro_f1"], abs=1e-9)
    assert best["val_accuracy"] == pytest.approx(oof.loc[0, "accuracy"], abs=1e-9)
    # the same numbers as scikit-learn's own macro-F1 over the fold's OOF predictions
    from sklearn.metrics import f1_score

    rows = store.read_predictions(run_dir, "oof")
    logits = rows[[c for c in rows.columns if c.startswith("logit_")]].to_numpy()
    # red is neither a label nor predicted here: over all three classes the fold would score 2/3 of this
    assert set(rows["label_index"]) == {0, 1} and 2 not in set(logits.argmax(1))
    assert best["val_macro_f1"] == pytest.approx(
        f1_score(rows["label_index"], logits.argmax(1), average="macro", zero_division=0), abs=1e-9)
