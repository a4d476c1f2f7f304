"""The run store: layout, atomic locked status updates, listing, lookup by id."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from engine.errors import ConfigError, RunError
from engine.runs import list_runs
from engine.runs.store import (
    append_metrics,
    fold_is_complete,
    list_studies,
    predictions_path,
    read_metrics,
    read_predictions,
    read_split,
    read_status,
    run_dir_of,
    update_fold_status,
    update_status,
    weights_path,
    write_predictions,
)
from engine.training.config import load_run_configs
from engine.training.config import read_run_config as read_config
from engine.training.create import create_runs


def config(spec, **train):
    return {"dataset": str(spec), "model": {"name": "test_resnet"}, "image_size": 32,
            "split": {"k": 2, "holdout_fraction": 0.2}, "train": {"epochs": 1, **train}}


@pytest.fixture(scope="module")
def study(tmp_path_factory, demo_spec_path):
    workspace = tmp_path_factory.mktemp("ws-store")
    data = {**config(demo_spec_path), "vary": {"train.lr": [0.01, 0.001]}}
    return workspace, create_runs(load_run_configs(data), workspace=workspace)


def test_created_runs_have_the_documented_layout(study, demo_dataset):
    workspace, run_dirs = study
    for run_dir in run_dirs:
        assert run_dir.parent == workspace / "runs"
        assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "split.parquet", "status.json"}
        status = read_status(run_dir)
        assert status["state"] == "queued" and status["run_id"] == run_dir.name and status["error"] is None
        assert status["subsets"] == ["oof", "holdout", "test"] and set(status["folds"]) == {"0", "1"}
        cfg = read_config(run_dir)
        assert cfg.classes == demo_dataset.classes and cfg.augment["transform"]["transforms"]
        split = read_split(run_dir)
        assert list(split.columns) == ["sample_id", "fold", "is_holdout"] and len(split) == len(demo_dataset.manifest)
        assert split["fold"].dtype == "int64" and split["is_holdout"].dtype == bool
    assert [read_config(r).name for r in run_dirs] == ["test_resnet lr=0.01", "test_resnet lr=0.001"]
    (study_file,) = list_studies(workspace)
    assert study_file["runs"] == [r.name for r in run_dirs] and study_file["varied"] == {"train.lr": [0.01, 0.001]}


def test_status_updates_merge_under_concurrency(study):
    run_dir = study[1][0]

    def work(i):
        for j in range(10):
            update_fold_status(run_dir, i % 2, **{f"k{i}": j})
            update_status(run_dir, **{f"t{i}": j})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = json.loads((run_dir / "status.json").read_text())
    assert all(status[f"t{i}"] == 9 for i in range(6))
    assert all(status["folds"][str(i % 2)][f"k{i}"] == 9 for i in range(6))
    assert not list(run_dir.glob(".*.tmp"))


def _append_rows(run_dir, fold: int, n: int) -> None:
    for epoch in range(n):
        append_metrics(run_dir, {"fold": fold, "epoch": epoch, "val_loss": 1.0})


def test_metrics_rows_survive_folds_training_in_parallel_processes(tmp_path, demo_spec_path):
    import multiprocessing

    (run_dir,) = create_runs(load_run_configs(config(demo_spec_path)), workspace=tmp_path)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_rows, args=(run_dir, fold, 15)) for fold in (0, 1)]
    for w in workers:
        w.start()
    _append_rows(run_dir, 2, 15)
    for w in workers:
        w.join(60)
    assert read_metrics(run_dir).groupby("fold").size().to_dict() == {0: 15, 1: 15, 2: 15}


def test_progress_follows_fold_state(tmp_path, demo_spec_path):
    (run_dir,) = create_runs(load_run_configs(config(demo_spec_path)), workspace=tmp_path)
    update_fold_status(run_dir, 0, state="done")
    status = update_fold_status(run_dir, 1, state="running", epoch=1, epochs=2, batch=5, batches=10)
    assert status["progress"] == pytest.approx((1 + 0.25) / 2)


def test_list_runs_newest_first_with_best_metrics(tmp_path, demo_spec_path):
    first, = create_runs(load_run_configs(config(demo_spec_path)), workspace=tmp_path)
    update_status(first, created_at="2020-01-01T00:00:00+00:00")
    second, = create_runs(load_run_configs(config(demo_spec_path)), workspace=tmp_path)
    for fold, (loss, acc) in enumerate([(0.5, 0.8), (0.7, 0.6)]):
        append_metrics(second, {"fold": fold, "epoch": 1, "val_loss": loss + 0.1, "val_accuracy": acc - 0.1,
                                "val_macro_f1": 0.1})
        append_metrics(second, {"fold": fold, "epoch": 2, "val_loss": loss, "val_accuracy": acc, "val_macro_f1": 0.2})
    runs = list_runs(tmp_path)
    assert runs["run_id"].tolist() == [second.name, first.name]
    assert runs.loc[0, "val_loss"] == pytest.approx(0.6) and runs.loc[0, "val_accuracy"] == pytest.approx(0.7)
    assert runs.loc[0, "state"] == "queued" and runs.loc[0, "model"] == "test_resnet"
    assert pd.isna(runs.loc[1, "val_loss"])
    assert len(read_metrics(second)) == 4 and read_metrics(first).empty


def test_run_dir_of_by_id_prefix_and_path(study):
    workspace, run_dirs = study
    run_dir = run_dirs[0]
    assert run_dir_of(run_dir.name, workspace) == run_dir
    assert run_dir_of(str(run_dir)) == run_dir
    assert run_dir_of(run_dir.name[:-3], workspace) == run_dir
    with pytest.raises(RunError, match="'nope-123'"):
        run_dir_of("nope-123", workspace)
    with pytest.raises(RunError, match="ambiguous"):
        run_dir_of(run_dir.name[:4], workspace)


def test_fold_completeness_needs_weights_and_every_subset(tmp_path, demo_spec_path):
    (run_dir,) = create_runs(load_run_configs(config(demo_spec_path)), workspace=tmp_path)
    assert not fold_is_complete(run_dir, 0)
    frame = pd.DataFrame({"sample_id": ["a", "b"], "fold": pd.array([0, 0], dtype="int16"), "view": ["identity", "hflip"],
                          "label_index": [1, 1], "logit_0": pd.array([0.1, 0.2], dtype="float32")})
    for subset in ("oof", "holdout"):
        write_predictions(run_dir, 0, subset, frame)
    weights_path(run_dir, 0).parent.mkdir(parents=True)
    weights_path(run_dir, 0).write_bytes(b"x")
    assert not fold_is_complete(run_dir, 0)  # test predictions missing
    write_predictions(run_dir, 0, "test", frame)
    assert fold_is_complete(run_dir, 0)
    assert read_predictions(run_dir, "oof", views=["hflip"])["sample_id"].tolist() == ["b"]
    assert read_predictions(run_dir, "oof", folds=[1]).empty
    with pytest.raises(ConfigError, match="'subset' parameter"):
        predictions_path(run_dir, 0, "valid")
