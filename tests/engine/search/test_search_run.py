"""Real searches: every trial is a run started by the local launcher (a detached process), pruned runs are
cancelled through it, failures are recorded, and the Optuna database reopens from scratch."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
import yaml

from engine.errors import RunError
from engine.jobs import effective_status
from engine.runs import store
from engine.search import (
    cancel_search,
    create_search,
    effective_search_status,
    list_searches,
    load_study,
    objective_value,
    read_search,
    run_search,
    search_trials,
    storage_url,
)
from engine.search.launch import check_resumable
from engine.training.config import read_run_config
from tests.engine.jobs.job_helpers import describe, kill_jobs, wait_for


def base_config(spec_path, **train) -> dict:
    return {"dataset": str(spec_path), "model": {"name": "test_resnet"}, "image_size": 32, "device": "cpu",
            "split": {"k": 2, "seed": 0, "holdout_fraction": 0.2}, "tta_views": ["identity"], "augment": "none",
            "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.0, "num_workers": 0,
                      "scheduler": "none", **train}}


@pytest.fixture
def search_workspace(workspace, monkeypatch):
    # The trials' job processes inherit it: on a busy 2-core runner, two OpenMP threads per tiny model
    # spin-wait each other to a crawl (tests/engine/training/conftest.py measured 40x).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield workspace
    kill_jobs(workspace)  # a failed test leaves no job behind
    for row in list_searches(workspace):
        if row["state"] in ("queued", "running"):
            cancel_search(row["path"], workspace=workspace, timeout=10)


def test_trials_are_runs_sharing_one_split_and_the_median_pruner_cancels_a_bad_one(mini_spec_path,
                                                                                    search_workspace):
    """Trial 0 (a sane learning rate) completes; trial 1 (lr 1e-7, still at chance after epoch 3) is pruned:
    its run is cancelled through the launcher with a message, the trial is PRUNED."""
    data = {**base_config(mini_spec_path, epochs=8, batch_size=8),
            "search": {"name": "prune test", "trials": 2, "metric": "accuracy", "evaluate_on": "fold0",
                       "pruner_startup_trials": 1, "pruner_warmup_epochs": 2,
                       "params": {"train.lr": {"low": 1e-7, "high": 1e-2, "log": True}}}}
    path = create_search(data, workspace=search_workspace)
    record = read_search(path)
    study = load_study(record.search_id, workspace=search_workspace)
    study.enqueue_trial({"train.lr": 1e-2})
    study.enqueue_trial({"train.lr": 1e-7})
    state = run_search(path, poll_s=0.2)
    trials = search_trials(path)
    run_dirs = [search_workspace / "runs" / r for r in trials["run_id"]]
    assert state == "done", describe(path) + "\n".join(describe(d) for d in run_dirs)
    assert list(trials["state"]) == ["COMPLETE", "PRUNED"], trials.to_string()

    # trial 0: a normal run trained by a job process; fold 0 only (evaluate_on: fold0); scored on its predictions
    first, pruned = run_dirs
    assert effective_status(first)["state"] == "done"
    assert store.fold_is_complete(first, 0) and not store.fold_is_complete(first, 1)
    assert trials.at[0, "value"] == pytest.approx(objective_value(first, "accuracy", evaluate_on="fold0"))
    assert read_run_config(first).train.lr == pytest.approx(1e-2)
    assert read_run_config(first).name == "prune test #0"
    assert store.read_status(first)["study_id"] == record.search_id
    study_file = store.read_study(record.search_id, search_workspace)
    assert study_file["runs"] == [first.name, run_dirs[1].name]
    assert study_file["varied"]["train.lr"] == pytest.approx([1e-2, 1e-7])

    # trial 1: cancelled through the launcher at its first reported epoch, with the reason in its status
    status = effective_status(pruned)
    assert status["state"] == "cancelled" and "pruned by search" in status["message"]
    assert len(store.read_metrics(pruned)) < 8
    assert study.trials[1].intermediate_values  # reported before being pruned

    # one split for every trial (same split config -> same split)
    pd.testing.assert_frame_equal(store.read_split(first), store.read_split(pruned))

    # the search's record, and the database reopened from nothing (a restarted studio)
    final = effective_search_status(path)
    assert (final["state"], final["trials_done"], final["best_trial"], final["best_run_id"]) == (
        "done", 2, 0, first.name)
    fresh = optuna.load_study(study_name=record.search_id, storage=storage_url(search_workspace))
    assert [t.state.name for t in fresh.trials] == ["COMPLETE", "PRUNED"]
    assert fresh.best_trial.user_attrs["run_id"] == first.name
    assert fresh.direction.name == "MAXIMIZE"
    with pytest.raises(RunError, match="has all its 2 trials"):
        check_resumable(path)


def test_a_search_whose_every_trial_fails_stops_with_a_message(mini_spec_path, search_workspace, tmp_path):
    """Each trial's pipeline crops 200 px out of 32 px images: the run fails while training; after
    max_failures trials in a row the search gives up, naming the first error; the database stays readable."""
    from engine.augment.pipeline import save_pipeline_file

    bad = save_pipeline_file({"__version__": "2.0.8", "transform": {
        "__class_fullname__": "Compose", "p": 1.0, "transforms": [
            {"__class_fullname__": "RandomCrop", "height": 200, "width": 200, "p": 1.0}]}}, tmp_path / "bad.yaml")
    data = {**base_config(mini_spec_path),
            "search": {"trials": 3, "max_failures": 2, "params": {"augment": [str(bad)]}}}
    path = create_search(data, workspace=search_workspace)
    state = run_search(path, poll_s=0.2)
    status = effective_search_status(path)
    assert state == "failed" and status["state"] == "failed"
    assert "stopped after 2 failed trials in a row" in status["error"]
    assert "trial 0: albumentations.augmentations.crops.transforms.CropSizeError: Crop size" in status["error"]
    assert "Fix the config, then run a new search." in status["error"] and "resume the run" not in status["error"]
    trials = search_trials(path)
    assert list(trials["state"]) == ["FAIL", "FAIL"] and list(trials["run_state"]) == ["failed", "failed"]
    assert all("CropSizeError" in e and "train.log" in e for e in trials["error"])
    fresh = optuna.load_study(study_name=path.name, storage=storage_url(search_workspace))
    assert len(fresh.trials) == 2


def test_detached_search_from_the_cli_lists_and_cancels_with_its_running_trial(mini_spec_path, search_workspace,
                                                                              tmp_path, capsys):
    """`search CONFIG --detach` returns at once; `search-cancel` stops the search and its running trial's run."""
    from engine.cli import main

    data = {**base_config(mini_spec_path, epochs=200),
            "search": {"trials": 3, "params": {"train.weight_decay": {"low": 0.0, "high": 0.1}}}}
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["search", str(config), "--detach", "--trials", "2", "--workspace", str(search_workspace)]) == 0
    search_id = capsys.readouterr().out.strip()
    path = search_workspace / "searches" / search_id
    assert read_search(path).search.trials == 2

    def training() -> bool:
        run_id = effective_search_status(path).get("current_run_id")
        return bool(run_id) and effective_status(search_workspace / "runs" / run_id)["state"] == "running"

    wait_for(training, "the first trial's run to train", run_dirs=[path])
    run_dir = search_workspace / "runs" / effective_search_status(path)["current_run_id"]
    assert main(["searches", "--workspace", str(search_workspace), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["search_id"], r["state"]) for r in listed] == [(search_id, "running")]

    assert main(["search-cancel", search_id, "--workspace", str(search_workspace)]) == 0
    assert effective_search_status(path)["state"] == "cancelled"
    wait_for(lambda: effective_status(run_dir)["state"] == "cancelled", "the trial's run to be cancelled",
             run_dirs=[run_dir], timeout=60)
    trials = search_trials(path)
    assert list(trials["state"]) == ["FAIL"] and trials.at[0, "error"] == "search cancelled"
    assert main(["searches", search_id, "--workspace", str(search_workspace)]) == 0
    shown = capsys.readouterr().out
    assert "cancelled" in shown and run_dir.name in shown
    with pytest.raises(RunError, match="not running"):
        cancel_search(path)


def test_a_search_whose_process_died_shows_as_failed(mini_spec_path, search_workspace):
    path = create_search({**base_config(mini_spec_path), "search": {"params": {"train.lr": [0.01]}}},
                         workspace=search_workspace)
    from engine.search.record import update_search_status

    update_search_status(path, state="running", pid=2**22 + 12345)  # no such process
    status = effective_search_status(path)
    assert status["state"] == "failed" and "search-resume" in status["error"]
    assert check_resumable(path) == path


def test_objective_is_the_metric_of_the_oof_predictions(augment_study):
    from engine.analysis.load import load_predictions
    from engine.analysis.metrics import log_loss, macro_f1, softmax

    run_dir = augment_study.run_dirs[0]
    preds = load_predictions(run_dir, "oof", views=["identity"])
    proba = softmax(preds.logits[0])
    assert objective_value(run_dir, "macro_f1") == pytest.approx(macro_f1(preds.labels, proba.argmax(1)))
    assert objective_value(run_dir, "log_loss") == pytest.approx(log_loss(preds.labels, proba))
    fold0 = preds.fold_of == 0
    assert objective_value(run_dir, "macro_f1", evaluate_on="fold0") == pytest.approx(
        macro_f1(preds.labels[fold0], proba[fold0].argmax(1)))


def test_a_search_on_a_closed_ray_address_is_refused_before_anything_is_written(mini_spec_path, search_workspace,
                                                                                 tmp_path, capsys):
    """`search --launcher ray` checks the cluster first: no search, no Optuna study, the address named."""
    import socket

    from engine.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({**base_config(mini_spec_path), "search": {"params": {"train.lr": [0.01]}}}))
    code = main(["search", str(config), "--workspace", str(search_workspace), "--launcher", "ray",
                 "--ray-address", address])
    assert code == 2
    err = capsys.readouterr().err
    assert f"No Ray cluster answers at '{address}'" in err and "ray start --head" in err
    assert list_searches(search_workspace) == []
    assert not (search_workspace / "optuna.db").exists() or optuna.get_all_study_names(
        storage_url(search_workspace)) == []


@pytest.mark.slow
def test_a_search_with_the_ray_backend_trains_every_trial_on_the_cluster(ray_cluster, mini_spec_path,
                                                                         search_workspace, tmp_path, capsys):
    """`search --launcher ray`: the backend is checked, recorded with the search, and every trial's run is
    trained by Ray's fold tasks (its status names the Ray driver), scored and told to Optuna as locally."""
    from engine.cli import main

    data = {**base_config(mini_spec_path, epochs=2, batch_size=16),
            "search": {"name": "on ray", "trials": 2, "metric": "accuracy", "evaluate_on": "fold0",
                       "pruner": "none", "params": {"train.lr": [3e-3, 1e-2]}}}
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump(data))
    code = main(["search", str(config), "--workspace", str(search_workspace), "--launcher", "ray",
                 "--ray-address", ray_cluster])
    out, err = capsys.readouterr()
    path = search_workspace / "searches" / out.strip()
    trials = search_trials(path)
    run_dirs = [search_workspace / "runs" / r for r in trials["run_id"]]
    assert code == 0, err + describe(path) + "\n".join(describe(d) for d in run_dirs)
    assert read_search(path).base["launcher"] == "ray" and read_search(path).base["ray_address"] == ray_cluster
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE"], trials.to_string()
    for run_dir, value in zip(run_dirs, trials["value"], strict=True):
        status = store.read_status(run_dir)
        assert status["state"] == "done" and status["launcher"] == "ray" and status["ray"]["address"] == ray_cluster
        assert read_run_config(run_dir).launcher == "ray"
        assert store.fold_is_complete(run_dir, 0) and not store.fold_is_complete(run_dir, 1)
        assert value == pytest.approx(objective_value(run_dir, "accuracy", evaluate_on="fold0"))
