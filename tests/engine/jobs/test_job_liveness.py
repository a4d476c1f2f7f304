"""Liveness: a queued / running run whose process is gone or silent is reported as failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from engine.jobs.liveness import GONE_MESSAGE, effective_status, folds_progress, liveness_problem, now_iso, pid_alive


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def test_pid_alive_sees_live_dead_and_zombie_processes():
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive("x")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


def test_liveness_problem():
    me = os.getpid()
    assert liveness_problem({"state": "running", "pid": me, "updated_at": now_iso()}) is None
    assert liveness_problem({"state": "done", "pid": 999_999_999}) is None  # final states are taken as written
    assert liveness_problem({"state": "running", "pid": 999_999_999, "updated_at": now_iso()}) == GONE_MESSAGE
    assert "has not reported for" in liveness_problem({"state": "running", "pid": me, "updated_at": _ago(120)})
    assert liveness_problem({"state": "queued", "pid": None, "created_at": now_iso()}) is None
    assert "never started" in liveness_problem({"state": "queued", "pid": None, "updated_at": _ago(60)})


def test_effective_status_reports_a_dead_job_as_failed(tmp_path):
    status = {
        "run_id": "r",
        "state": "running",
        "pid": 999_999_999,
        "updated_at": now_iso(),
        "progress": 0.5,
        "folds": {"0": {"state": "done"}, "1": {"state": "running", "epoch": 1, "epochs": 2}},
    }
    (tmp_path / "status.json").write_text(json.dumps(status))
    seen = effective_status(tmp_path)
    assert seen["state"] == "failed" and seen["raw_state"] == "running"
    assert seen["error"] == "the training process is gone; resume it"
    assert seen["alive"] is False
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "running"  # read-only


def test_folds_progress_counts_done_folds_and_finished_batches():
    status = {
        "folds": {"0": {"state": "done"}, "1": {"state": "running", "epoch": 2, "epochs": 2, "batch": 5, "batches": 10}}
    }
    assert folds_progress(status) == 0.875
    assert folds_progress({"state": "done"}) == 1.0
