"""Whole runs on CPU: artifacts complete and consistent, resume, cancel, re-predict, a study's shared split."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.data import open_dataset
from engine.errors import RunError
from engine.runs.store import (
    fold_is_complete,
    read_metrics,
    read_predictions,
    read_split,
    read_status,
    read_study,
    weights_path,
)
from engine.training.config import load_run_configs
from engine.training.config import read_run_config as read_config
from engine.training.create import create_runs
from engine.training.fit import Cancelled, train_run
from engine.training.predict import predict_run

pytestmark = pytest.mark.slow


def fold_files(run_dir, fold: int) -> dict[str, str]:
    files = [weights_path(run_dir, fold), *sorted((run_dir / "predictions").glob(f"fold{fold}_*.parquet"))]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def three_fold_run(tmp_path_factory, tiny_config):
    """A 3-fold run with a 10% holdout: folds 0 and 1 trained first, then the run resumed (fold 2 only)."""
    workspace = tmp_path_factory.mktemp("ws-fit")
    (run_dir,) = create_runs(load_run_configs(tiny_config()), workspace=workspace)
    train_run(run_dir, folds=[0, 1])
    before = {f: fold_files(run_dir, f) for f in (0, 1)}
    metrics_before = read_metrics(run_dir)
    seen = []
    train_run(run_dir, progress=seen.append)
    return {"run_dir": run_dir, "before": before, "metrics_before": metrics_before, "resumed_folds": seen}


def test_resume_trains_only_unfinished_folds_and_leaves_finished_ones_untouched(three_fold_run):
    run_dir = three_fold_run["run_dir"]
    assert {event["fold"] for event in three_fold_run["resumed_folds"]} == {2}
    for fold in (0, 1):
        assert fold_files(run_dir, fold) == three_fold_run["before"][fold]
    metrics = read_metrics(run_dir)
    pd.testing.assert_frame_equal(metrics[metrics["fold"] < 2].reset_index(drop=True), three_fold_run["metrics_before"])


def test_full_run_artifacts_are_complete_and_consistent(three_fold_run, demo_dataset):
    run_dir = three_fold_run["run_dir"]
    cfg, split, status = read_config(run_dir), read_split(run_dir), read_status(run_dir)
    assert status["state"] == "done" and status["progress"] == 1.0
    assert all(status["folds"][str(f)]["state"] == "done" for f in range(3))
    assert all(fold_is_complete(run_dir, f) for f in range(3))
    assert cfg.classes == demo_dataset.classes and cfg.image_size == 32 and cfg.augment is not None
    views = set(cfg.tta_views)
    manifest = demo_dataset.manifest.set_index("sample_id")
    holdout_ids = set(split.loc[split["is_holdout"], "sample_id"])
    train_ids = set(split["sample_id"]) - holdout_ids

    oof = read_predictions(run_dir, "oof")
    assert set(oof["view"]) == views
    assert (oof.groupby(["sample_id", "view"]).size() == 1).all() and set(oof["sample_id"]) == train_ids
    assert len(oof) == len(train_ids) * len(views)
    fold_of = split.set_index("sample_id")["fold"]
    assert (oof["fold"].to_numpy() == fold_of.loc[oof["sample_id"]].to_numpy()).all()
    assert (oof["label_index"].to_numpy() == manifest.loc[oof["sample_id"], "label_index"].to_numpy()).all()

    for subset, ids in (("holdout", holdout_ids), ("test", set(demo_dataset.test_manifest["sample_id"]))):
        preds = read_predictions(run_dir, subset)
        assert set(preds["sample_id"]) == ids and len(ids) > 0
        assert (preds.groupby(["sample_id", "fold", "view"]).size() == 1).all()
        assert len(preds) == len(ids) * 3 * len(views)
    test = read_predictions(run_dir, "test")
    assert (test["label_index"] == -1).all()

    logit_cols = [f"logit_{c}" for c in range(len(cfg.classes))]
    assert list(oof.columns) == ["sample_id", "fold", "view", "label_index", *logit_cols]
    assert oof["fold"].dtype == np.int16 and all(oof[c].dtype == np.float32 for c in logit_cols)
    assert np.isfinite(oof[logit_cols].to_numpy()).all()

    metrics = read_metrics(run_dir)
    assert sorted(metrics["fold"]) == [0, 1, 2] and (metrics["epoch"] == 1).all()
    assert metrics.drop(columns=["fold", "epoch"]).notna().all().all()
    assert (metrics["images_per_second"] > 0).all()


def test_predict_run_repredicts_with_other_views(three_fold_run, tmp_path):
    run_dir = three_fold_run["run_dir"]
    weights = {f: weights_path(run_dir, f).read_bytes() for f in range(3)}
    identity = read_predictions(run_dir, "holdout", views=["identity"])
    predict_run(run_dir, ["identity", "vflip", "rot90"], folds=None)
    holdout = read_predictions(run_dir, "holdout")
    assert set(holdout["view"]) == {"identity", "vflip", "rot90"}
    assert read_config(run_dir).tta_views == ["identity", "vflip", "rot90"]
    assert {f: weights_path(run_dir, f).read_bytes() for f in range(3)} == weights
    again = holdout[holdout["view"] == "identity"].reset_index(drop=True)
    cols = [c for c in again.columns if c.startswith("logit_")]
    np.testing.assert_allclose(again[cols].to_numpy(), identity[cols].to_numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(holdout.loc[holdout["view"] == "rot90", cols].to_numpy(), again[cols].to_numpy())
    predict_run(run_dir, ["transpose"], folds=[0])  # one fold only: the config keeps describing the others
    assert read_config(run_dir).tta_views == ["identity", "vflip", "rot90"]
    assert set(read_predictions(run_dir, "oof", folds=[0])["view"]) == {"transpose"}


def test_predict_run_without_weights_is_refused(tmp_path, tiny_config):
    (run_dir,) = create_runs(load_run_configs(tiny_config()), workspace=tmp_path)
    with pytest.raises(RunError, match="no trained weights"):
        predict_run(run_dir, ["identity"])


def test_cancel_stops_at_a_batch_boundary_and_the_fold_restarts_clean(tmp_path, tiny_config):
    (run_dir,) = create_runs(load_run_configs(tiny_config(**{"split.k": 2, "train.batch_size": 128})),
                             workspace=tmp_path)
    phases = []
    with pytest.raises(Cancelled):
        # stop as soon as fold 0 starts predicting: its metrics row exists, its predictions do not
        train_run(run_dir, folds=[0], progress=lambda e: phases.append(e.get("phase", "")),
                  should_stop=lambda: any(p.startswith("predict") for p in phases))
    status = read_status(run_dir)
    assert status["state"] == "cancelled" and status["folds"]["0"]["state"] == "cancelled"
    assert not fold_is_complete(run_dir, 0) and len(read_metrics(run_dir)) == 1

    calls = []
    with pytest.raises(Cancelled):
        train_run(run_dir, folds=[0], should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3  # asked before every batch: stopped before the third
    train_run(run_dir, folds=[0])
    assert fold_is_complete(run_dir, 0) and len(read_metrics(run_dir)) == 1  # the stale row was replaced
    assert read_status(run_dir)["state"] == "running"  # fold 1 is still to do


def test_a_study_shares_one_split(tiny_study):
    a, b = tiny_study.run_dirs
    pd.testing.assert_frame_equal(read_split(a), read_split(b))
    study = read_study(tiny_study.study_id, tiny_study.workspace)
    assert study["runs"] == [a.name, b.name]
    assert study["varied"] == {"train.label_smoothing": [0.0, 0.1]}
    ca, cb = read_config(a), read_config(b)
    assert (ca.train.label_smoothing, cb.train.label_smoothing) == (0.0, 0.1)
    assert ca.model_copy(update={"name": None, "train": cb.train}) == cb.model_copy(update={"name": None})
    for run_dir in tiny_study.run_dirs:
        assert read_status(run_dir)["state"] == "done"
    oof_a, oof_b = (read_predictions(r, "oof", views=["identity"]).sort_values("sample_id") for r in (a, b))
    assert oof_a["sample_id"].tolist() == oof_b["sample_id"].tolist()
    assert (oof_a["fold"].to_numpy() == oof_b["fold"].to_numpy()).all()
    assert (oof_a["label_index"] == oof_a[[c for c in oof_a if c.startswith("logit_")]].to_numpy().argmax(1)).mean() > 0.3
    assert yaml.safe_load((a / "config.yaml").read_text())["split"] == {"k": 2, "seed": 0, "group_column": None,
                                                                         "holdout_fraction": 0.2}


def test_the_run_still_needs_its_dataset(three_fold_run):
    dataset = open_dataset(read_config(three_fold_run["run_dir"]).dataset)
    assert len(dataset.manifest) == len(read_split(three_fold_run["run_dir"]))


def test_the_same_config_trains_to_the_same_weights(tmp_path, tiny_config):
    from safetensors.torch import load_file

    data = tiny_config(**{"split.k": 2, "train.batch_size": 128, "train.deterministic": True, "tta_views": ["identity"]})
    run_dirs = [create_runs(load_run_configs(data), workspace=tmp_path)[0] for _ in range(2)]
    for run_dir in run_dirs:
        train_run(run_dir, folds=[0])
    a, b = (load_file(str(weights_path(r, 0))) for r in run_dirs)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    pd.testing.assert_frame_equal(read_predictions(run_dirs[0], "oof"), read_predictions(run_dirs[1], "oof"))
