"""Synthetic run directories in the run-store layout (docs/formats.md), built without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def write_run(runs_root: Path, run_id: str, *, k: int = 3, views=("identity", "hflip"), n_classes: int = 3,
              n_train: int = 60, n_holdout: int = 20, test_ids=None, label_smoothing: float = 0.0,
              split_seed: int = 0, seed: int = 0, dataset: str | None = None, skill: float = 2.0,
              classes: list[str] | None = None, model: str = "test_resnet") -> Path:
    """A complete run with random-but-informative logits; returns its directory.

    Runs with the same ``split_seed`` (and sizes) share one split; ``seed`` varies the logits.
    """
    split_rng = np.random.default_rng(split_seed)
    rng = np.random.default_rng(seed)
    classes = classes or [f"c{i}" for i in range(n_classes)]
    ids = np.array([f"s{i:04d}" for i in range(n_train + n_holdout)], dtype=object)
    labels = split_rng.integers(0, n_classes, len(ids))
    fold = np.concatenate([split_rng.permutation(np.arange(n_train) % k), -np.ones(n_holdout, dtype=int)])
    run_dir = runs_root / run_id
    (run_dir / "predictions").mkdir(parents=True)
    config = {"format_version": 1, "name": run_id, "dataset": dataset or "/nonexistent/dataset.yaml",
              "model": {"name": model}, "split": {"k": k, "seed": split_seed, "holdout_fraction": 0.2},
              "train": {"epochs": 1, "label_smoothing": label_smoothing, "num_workers": 0},
              "tta_views": list(views), "device": "cpu", "seed": 0, "classes": classes}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    pd.DataFrame({"sample_id": ids, "fold": fold, "is_holdout": fold < 0}).to_parquet(run_dir / "split.parquet")

    def rows(sample_ids, sample_labels, f, view):
        n = len(sample_ids)
        onehot = np.eye(n_classes)[np.maximum(sample_labels, 0)] if np.all(sample_labels >= 0) else 0.0
        logits = (skill * onehot + rng.normal(size=(n, n_classes))).astype(np.float32)
        frame = pd.DataFrame({"sample_id": sample_ids, "fold": np.int16(f), "view": view,
                              "label_index": sample_labels.astype(np.int64)})
        for c in range(n_classes):
            frame[f"logit_{c}"] = logits[:, c]
        return frame

    test_ids = np.asarray(test_ids if test_ids is not None else [f"t{i:03d}" for i in range(15)], dtype=object)
    hold = fold < 0
    for f in range(k):
        val = fold == f
        for subset, sid, lab in (("oof", ids[val], labels[val]), ("holdout", ids[hold], labels[hold]),
                                 ("test", test_ids, -np.ones(len(test_ids), dtype=np.int64))):
            if subset == "holdout" and n_holdout == 0:
                continue
            frame = pd.concat([rows(sid, lab, f, v) for v in views], ignore_index=True)
            frame.to_parquet(run_dir / "predictions" / f"fold{f}_{subset}.parquet")
    return run_dir
