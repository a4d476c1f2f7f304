"""``cancel`` signals only the run's own job process, whatever pid status.json names."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.errors import RunError
from engine.jobs import LocalLauncher, effective_status
from engine.runs.liveness import job_process_fields, pid_alive, process_start_token
from engine.runs.store import read_status, update_status


@pytest.fixture
def bystander():
    """A process that is not a training job (it could be anything the system gave a recycled pid to)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_cancel_refuses_a_pid_that_now_belongs_to_another_process(fake_run, bystander):
    # the job recorded its start time; the pid was given to another program since (a different start)
    update_status(fake_run, state="running", pid=bystander.pid, pgid=bystander.pid, pid_started="1")
    with pytest.raises(RunError, match="not the run's training job.*nothing was signalled"):
        LocalLauncher().cancel(fake_run, timeout=2)
    assert pid_alive(bystander.pid) and bystander.poll() is None
    assert effective_status(fake_run)["state"] == "failed"  # and the liveness check does not take it for the job


def test_cancel_refuses_an_unrecorded_pid_that_runs_something_else(fake_run, bystander):
    # a status without a start time (hand-edited, or older): the process must at least run the engine
    status = json.loads((fake_run / "status.json").read_text())
    status.update(state="running", pid=bystander.pid, pgid=bystander.pid)
    (fake_run / "status.json").write_text(json.dumps(status))
    with pytest.raises(RunError, match=f"process {bystander.pid}.*not the run's training job"):
        LocalLauncher().cancel(fake_run, timeout=2)
    assert bystander.poll() is None and read_status(fake_run)["state"] == "running"


def test_the_job_process_is_recognised_by_its_start_time(fake_run):
    fields = job_process_fields(os.getpid(), os.getpgrp())
    assert fields["pid_started"] == process_start_token(os.getpid()) is not None
    update_status(fake_run, state="running", **fields)
    status = effective_status(fake_run)
    assert status["state"] == "running" and status["alive"]
