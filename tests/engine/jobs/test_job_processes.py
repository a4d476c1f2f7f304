"""Real job processes on CPU: the device queue, a SIGKILLed job seen as failed and resumed, folds over two processes.

Each job imports torch and timm (several seconds on a 2-core machine), so the cases are few and
each checks several things along one timeline.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

import pandas as pd
import pytest
from job_helpers import file_digests, kill_jobs, tiny_config, wait_for

from engine.jobs import LocalLauncher, effective_status
from engine.jobs.launcher import _group_members
from engine.jobs.liveness import GONE_MESSAGE
from engine.runs.store import fold_is_complete, read_metrics, read_status
from engine.training.config import load_run_configs
from engine.training.create import create_runs

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_stray_jobs(workspace, monkeypatch):
    # One thread per job: tiny models gain nothing from more, and jobs run side by side on 2 cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    kill_jobs(workspace)


def _state(run_dir):
    return effective_status(run_dir)["state"]


def _waiting(run_dir) -> bool:
    return str(read_status(run_dir).get("message")).startswith("waiting for cpu")


@contextmanager
def paused(run_dir):
    """SIGSTOP a job's process group for the block (it keeps its device lock), then SIGCONT it."""
    pgid = read_status(run_dir)["pgid"]
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


def test_queue_kill_resume(workspace, demo_spec_path):
    """A and B ask for the CPU: B waits for A. A is SIGKILLed after fold 0: it shows as failed, B takes
    the CPU, A resumes (waiting for B), finishes, and its fold 0 files are byte-identical."""
    config = {**tiny_config(demo_spec_path), "vary": {"seed": [0, 1]}}  # a study: one shared split
    run_a, run_b = create_runs(load_run_configs(config), workspace=workspace)
    launcher = LocalLauncher(workspace)
    both = (run_a, run_b)

    launcher.submit(run_a)
    wait_for(lambda: _state(run_a) == "running", "A to take the CPU", run_dirs=both)
    with paused(run_a):  # so A cannot finish before B, still importing torch, reaches the queue
        launcher.submit(run_b)
        wait_for(lambda: _waiting(run_b), "B to queue", run_dirs=both)
    assert _state(run_b) == "queued" and run_a.name in read_status(run_b)["message"]

    wait_for(lambda: fold_is_complete(run_a, 0), "A's fold 0", run_dirs=both, poll=0.02)
    pgid = read_status(run_a)["pgid"]
    os.killpg(pgid, signal.SIGKILL)
    fold0 = file_digests(run_a, 0)
    metrics0 = read_metrics(run_a).query("fold == 0").reset_index(drop=True)
    assert not fold_is_complete(run_a, 1)

    wait_for(lambda: _state(run_a) == "failed", "A to show as failed", run_dirs=both)
    seen = effective_status(run_a)
    assert seen["raw_state"] == "running" and seen["error"] == GONE_MESSAGE
    assert seen["folds"]["0"]["state"] == "done"

    wait_for(lambda: _state(run_b) == "running", "B to take the CPU A left", run_dirs=both)
    with paused(run_b):
        launcher.resume(run_a)
        wait_for(lambda: _waiting(run_a), "A to queue behind B", run_dirs=both)

    wait_for(lambda: _state(run_b) == "done" and _state(run_a) == "done", "both runs to finish", run_dirs=both)
    assert file_digests(run_a, 0) == fold0  # finished folds untouched
    assert fold_is_complete(run_a, 1) and fold_is_complete(run_b, 1)
    metrics = read_metrics(run_a)
    pd.testing.assert_frame_equal(metrics.query("fold == 0").reset_index(drop=True), metrics0)
    assert sorted(metrics.groupby("fold").size().items()) == [(0, 1), (1, 1)]
    status = read_status(run_a)
    assert status["error"] is None and status["finished_at"] and status["progress"] == 1.0
    wait_for(lambda: not _group_members(status["pgid"]), "A's job to exit", run_dirs=both)


def test_cancel_stops_the_job_and_its_dataloader_workers_at_a_batch_boundary(workspace, demo_spec_path):
    # one DataLoader worker, so the job's process group has a child for the cancel to take down
    (run_dir,) = create_runs(load_run_configs(tiny_config(demo_spec_path, epochs=5, num_workers=1)),
                             workspace=workspace)
    launcher = LocalLauncher(workspace)
    launcher.submit(run_dir)
    pgid = read_status(run_dir)["pgid"]
    wait_for(lambda: read_status(run_dir)["folds"]["0"]["state"] == "running" and len(_group_members(pgid)) >= 2,
             "fold 0 training with its DataLoader worker", run_dirs=[run_dir])
    status = launcher.cancel(run_dir, timeout=60)
    assert status["state"] == "cancelled" and status["error"] is None and status["finished_at"]
    assert _group_members(pgid) == []  # the job and its DataLoader worker are gone
    assert status["folds"]["0"]["state"] == "cancelled"  # the loop stopped and said so (no SIGKILL needed)
    assert "cancelled" in (run_dir / "train.log").read_text()
    assert not fold_is_complete(run_dir, 0)


def test_folds_spread_over_two_worker_processes(workspace, demo_spec_path):
    """With two devices (two CPU slots stand in for two GPUs) each worker process takes a fold."""
    (run_dir,) = create_runs(load_run_configs(tiny_config(demo_spec_path)), workspace=workspace)
    LocalLauncher(workspace).submit(run_dir, devices=["cpu", "cpu"])
    pgid = read_status(run_dir)["pgid"]
    wait_for(lambda: not _group_members(pgid), "the coordinator and its workers to exit", run_dirs=[run_dir])
    status = read_status(run_dir)
    assert status["state"] == "done", status
    assert status["device"] == "cpu,cpu"
    worker_pids = {status["folds"][k]["pid"] for k in ("0", "1")}
    assert len(worker_pids) == 2 and status["pid"] not in worker_pids  # two workers, besides the coordinator
    assert all(fold_is_complete(run_dir, f) for f in (0, 1))
    assert not (run_dir / ".fold_queue.json").exists()
