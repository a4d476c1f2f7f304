"""The Ray launcher on a real Ray cluster (``ray_cluster``: one per test session, on this machine, 2 CPUs).

Each case trains tiny runs on a 200-image slice of the demo digits, and checks several things along
one timeline: the same predictions as the local backend, cancel and resume, a killed worker, a
lost driver. Ray's workers import torch and timm (seconds on a 2-core machine), so cases are few.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from job_helpers import file_digests, tiny_config, wait_for

import engine.runs.liveness
from engine.errors import RunError
from engine.jobs import effective_status, launch_training, launcher_for_run
from engine.jobs.ray_launcher import NAMESPACE, RayLauncher
from engine.runs import fold_is_complete, pid_alive, predictions_path, read_metrics, read_status
from engine.training.config import load_run_configs
from engine.training.create import create_runs

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
ACTIVE = ("queued", "running")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _states(run_dirs) -> list[str]:
    return [effective_status(r)["state"] for r in run_dirs]


def _wait_until_final(run_dirs, what: str) -> None:
    wait_for(lambda: all(s not in ACTIVE for s in _states(run_dirs)), what, run_dirs=run_dirs, poll=0.2)


def _driver_gone(status: dict) -> bool:
    import ray

    try:
        ray.get_actor(status["ray"]["actor"], namespace=NAMESPACE)
    except ValueError:
        return True
    return False


def _running_fold(run_dir: Path, fold: int) -> bool:
    f = read_status(run_dir)["folds"][str(fold)]
    return f.get("state") == "running" and f.get("phase") == "train" and (f.get("batch") or 0) >= 1


def test_a_study_on_ray_predicts_exactly_what_the_local_backend_predicts(ray_cluster, mini_spec_path, workspace,
                                                                          tmp_path):
    """2 runs x 2 folds, deterministic: submitted by a command that exits at once (the drivers live on the
    cluster), trained by Ray, and equal to the same study trained by the local backend's job."""
    import torch

    from engine.jobs.runner import run_job

    config = {**tiny_config(mini_spec_path, deterministic=True), "vary": {"seed": [0, 1]}}
    config_path = tmp_path / "study.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "engine", "train", str(config_path), "--workspace", str(workspace),
                           "--detach", "--launcher", "ray", "--ray-address", ray_cluster],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    ray_runs = [workspace / "runs" / run_id for run_id in done.stdout.split()]
    assert len(ray_runs) == 2

    # Meanwhile the local backend trains the same study: its job function, one thread, as the Ray task.
    local_runs = create_runs(load_run_configs(config), workspace=tmp_path / "local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert [run_job(r) for r in local_runs] == ["done", "done"]
    finally:
        torch.set_num_threads(threads)

    _wait_until_final(ray_runs, "the Ray study to finish")
    for ray_run, local_run in zip(ray_runs, local_runs, strict=True):
        status = effective_status(ray_run)
        assert status["state"] == "done" and status["error"] is None and status["progress"] == 1.0, status
        assert status["launcher"] == "ray" and status["pid"] is None and not status["alive"]
        assert status["ray"]["num_cpus"] == 1 and status["ray"]["num_gpus"] == 0  # num_workers 0 + 1, CPU run
        for fold in (0, 1):
            assert status["folds"][str(fold)]["attempt"] == 1
            assert status["folds"][str(fold)]["device"].endswith("/cpu")
            assert status["subsets"] == ["oof", "holdout"]  # the mini dataset has no test images
            for subset in status["subsets"]:
                pd.testing.assert_frame_equal(pd.read_parquet(predictions_path(ray_run, fold, subset)),
                                              pd.read_parquet(predictions_path(local_run, fold, subset)))
        columns = ["fold", "epoch", "train_loss", "val_loss", "val_accuracy"]
        pd.testing.assert_frame_equal(read_metrics(ray_run)[columns].sort_values("fold", ignore_index=True),
                                      read_metrics(local_run)[columns].sort_values("fold", ignore_index=True))
        assert "fold 0 on" in (ray_run / "train.log").read_text()
        wait_for(lambda s=status: _driver_gone(s), "the run's driver actor to exit", run_dirs=[ray_run])

    listed = subprocess.run([sys.executable, "-m", "engine", "runs", "--workspace", str(workspace)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["done", "done"]


def test_cancel_mid_study_keeps_finished_folds_and_resume_trains_only_the_rest(ray_cluster, mini_spec_path, workspace):
    """2 CPUs per fold on a 2-CPU cluster: the study's 4 folds train one at a time. Cancelled while its
    second fold trains: the first stays, the rest is cancelled; resumed: done."""
    config = {**tiny_config(mini_spec_path, epochs=6), "vary": {"seed": [0, 1]}}
    runs = launch_training(config, workspace=workspace,
                           launcher=RayLauncher(workspace, address=ray_cluster, cpus_per_fold=2))
    assert read_status(runs[0])["ray"]["num_cpus"] == 2
    most_at_once = 0

    def one_done_and_the_next_training() -> bool:
        nonlocal most_at_once
        training = [(r, f) for r in runs for f in (0, 1) if read_status(r)["folds"][str(f)].get("state") == "running"]
        most_at_once = max(most_at_once, len(training))
        return any(fold_is_complete(r, f) for r in runs for f in (0, 1)) and any(
            _running_fold(r, f) for r, f in training)

    wait_for(one_done_and_the_next_training, "a finished fold and the next one training", run_dirs=runs, poll=0.02)
    assert most_at_once == 1  # Ray honoured num_cpus = 2 per fold
    (finished_run, finished_fold), = [(r, f) for r in runs for f in (0, 1) if fold_is_complete(r, f)]
    (training_run, training_fold), = [(r, f) for r in runs for f in (0, 1) if _running_fold(r, f)]
    kept = file_digests(finished_run, finished_fold)

    statuses = [launcher_for_run(r, workspace).cancel(r, timeout=60) for r in runs]
    for run_dir, status in zip(runs, statuses, strict=True):
        assert status["state"] == "cancelled" and status["error"] is None and status["finished_at"], status
        for fold in (0, 1):
            # as with the local backend: the fold that was training says cancelled, one never started queued
            expected = {(finished_run, finished_fold): "done", (training_run, training_fold): "cancelled"}.get(
                (run_dir, fold), "queued")
            assert status["folds"][str(fold)]["state"] == expected, status
    assert sum(fold_is_complete(r, f) for r in runs for f in (0, 1)) == 1
    wait_for(lambda: all(_driver_gone(s) for s in statuses), "the drivers to exit", run_dirs=runs)

    launcher = RayLauncher(workspace, address=ray_cluster)
    for run_dir in runs:
        launcher.resume(run_dir)
    _wait_until_final(runs, "the resumed study to finish")
    assert _states(runs) == ["done", "done"]
    assert file_digests(finished_run, finished_fold) == kept  # finished folds untouched
    for run_dir in runs:
        assert sorted(read_metrics(run_dir).groupby("fold").size().items()) == [(0, 6), (1, 6)]
    # only the unfinished folds were sent again: the kept one still shows its first (only) attempt
    assert read_status(finished_run)["folds"][str(finished_fold)]["attempt"] == 1


def test_a_killed_worker_is_retried_or_fails_the_run_cleanly(ray_cluster, mini_spec_path, workspace):
    """SIGKILL the process training fold 0: with a retry left Ray trains the fold again and the run ends
    done; without one the run ends failed with Ray's error (its other fold done), then resumes."""
    config = {**tiny_config(mini_spec_path, epochs=6), "vary": {"seed": [0, 1]}}
    retried, failing = create_runs(load_run_configs(config), workspace=workspace)
    RayLauncher(workspace, address=ray_cluster, max_retries=1).submit(retried)
    RayLauncher(workspace, address=ray_cluster, max_retries=0).submit(failing)
    both = [retried, failing]
    to_kill = set(both)

    def kill_each_fold_0_once_it_trains() -> bool:  # in whatever order Ray starts them
        for run_dir in [r for r in both if r in to_kill and _running_fold(r, 0)]:
            os.kill(read_status(run_dir)["folds"]["0"]["pid"], signal.SIGKILL)
            to_kill.discard(run_dir)
        return not to_kill

    wait_for(kill_each_fold_0_once_it_trains, "fold 0 of each run to train", run_dirs=both, poll=0.02)

    _wait_until_final(both, "both runs to end")
    status = effective_status(retried)
    assert status["state"] == "done" and status["folds"]["0"]["attempt"] == 2, status
    assert all(fold_is_complete(retried, f) for f in (0, 1))

    status = effective_status(failing)
    assert status["state"] == "failed" and status["raw_state"] == "failed", status
    assert status["error"].startswith("fold 0: Ray: WorkerCrashedError") and "resume" in status["error"]
    assert status["folds"]["0"]["state"] == "failed" and status["folds"]["1"]["state"] == "done"
    assert not fold_is_complete(failing, 0) and fold_is_complete(failing, 1)
    kept = file_digests(failing, 1)

    RayLauncher(workspace, address=ray_cluster).resume(failing)
    _wait_until_final([failing], "the failed run to resume")
    assert effective_status(failing)["state"] == "done"
    assert file_digests(failing, 1) == kept


def test_a_lost_driver_shows_as_failed_instead_of_running_forever(ray_cluster, mini_spec_path, workspace, monkeypatch):
    """The driver actor is killed, and with it (Ray stops the tasks of a dead owner) its fold task, which says
    why in the fold's error. Nobody is left to record the run's final state: its heartbeat goes stale and the
    run shows as failed, never running forever; resume is then allowed."""
    import ray

    from engine.jobs.launcher import prepare_resume

    monkeypatch.setattr(engine.runs.liveness, "HEARTBEAT_STALE_S", 4.0)
    (run_dir,) = launch_training(tiny_config(mini_spec_path, epochs=200), workspace=workspace,
                                 launcher=RayLauncher(workspace, address=ray_cluster))
    wait_for(lambda: _running_fold(run_dir, 0), "fold 0 to train", run_dirs=[run_dir], poll=0.05)
    fold_pid = read_status(run_dir)["folds"]["0"]["pid"]
    info = read_status(run_dir)["ray"]
    ray.kill(ray.get_actor(info["actor"], namespace=NAMESPACE), no_restart=True)

    wait_for(lambda: not pid_alive(fold_pid), "the fold task (owned by the driver) to end", run_dirs=[run_dir])
    assert read_status(run_dir)["folds"]["0"]["error"].startswith(
        "the Ray worker training fold 0 was stopped (SIGTERM) before the fold ended")
    wait_for(lambda: effective_status(run_dir)["state"] == "failed", "the run to show as failed", run_dirs=[run_dir])
    status = effective_status(run_dir)
    assert status["raw_state"] == "running" and not status["alive"], status
    assert status["error"].startswith(f"the run's driver (Ray actor {info['actor']} on the cluster at "), status
    assert "resume" in status["error"] and status["folds"]["0"]["state"] == "failed"
    assert prepare_resume(run_dir) == run_dir and read_status(run_dir)["state"] == "queued"


def test_a_fold_no_node_can_take_is_refused_before_any_run_is_written(ray_cluster, mini_spec_path, workspace):
    """Each fold would ask for 9 CPUs of a 2-CPU cluster: Ray would keep it waiting forever, so the launch is
    refused first, naming what to change, and no run is left queued."""
    config = {**tiny_config(mini_spec_path, num_workers=8), "launcher": "ray", "ray_address": ray_cluster}
    with pytest.raises(RunError, match=r"9 CPU\(s\).*has 2 CPU\(s\)\. Lower train.num_workers to at most 1"):
        launch_training(config, workspace=workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())
