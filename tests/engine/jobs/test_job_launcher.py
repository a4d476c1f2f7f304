"""The launcher's rules without training: what cancel and resume refuse, the process-group stop, backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.errors import ConfigError, RunError
from engine.jobs import Launcher, LocalLauncher, create_launcher, list_launchers, register_launcher
from engine.jobs.launcher import _group_members, prepare_resume, stop_process_tree
from engine.jobs.liveness import now_iso
from engine.runs.store import read_status, update_status


def test_cancel_refuses_a_run_that_is_not_active(fake_run):
    update_status(fake_run, state="done")
    with pytest.raises(RunError, match="not running \\(state: done\\); nothing to cancel"):
        LocalLauncher().cancel(fake_run)


def test_cancel_of_a_run_without_a_live_process_just_marks_it(fake_run):
    update_status(fake_run, state="running", pid=999_999_999, pgid=999_999_999)
    status = LocalLauncher().cancel(fake_run)
    assert status["state"] == "cancelled" and read_status(fake_run)["finished_at"]


def test_resume_refuses_a_live_job_and_a_finished_run(fake_run, monkeypatch):
    update_status(fake_run, state="running", pid=os.getpid(), updated_at=now_iso())
    with pytest.raises(RunError, match="is running .*cancel it first"):
        prepare_resume(fake_run)
    monkeypatch.setattr("engine.runs.fold_is_complete", lambda run_dir, fold: True)
    update_status(fake_run, state="done")
    with pytest.raises(RunError, match="nothing to resume"):
        prepare_resume(fake_run)


def test_resume_of_a_dead_job_requeues_it_at_the_first_unfinished_fold(fake_run, monkeypatch):
    monkeypatch.setattr("engine.runs.fold_is_complete", lambda run_dir, fold: fold == 0)
    update_status(fake_run, state="running", pid=999_999_999, error=None)  # killed: shows as failed
    prepare_resume(fake_run)
    status = read_status(fake_run)
    assert status["state"] == "queued" and status["pid"] is None and status["message"] == "resuming at fold 1"


def test_stop_process_tree_takes_down_the_whole_group():
    # a detached leader with a child that ignores nothing special: both must go
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    leader = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        for _ in range(100):
            if len(_group_members(leader.pid)) >= 2:
                break
            subprocess.run(["sleep", "0.05"])
        assert len(_group_members(leader.pid)) == 2
        killed = stop_process_tree(leader.pid, leader.pid, timeout=10, on_wait=leader.poll)
        assert killed is False  # SIGTERM was enough
        assert _group_members(leader.pid) == []
    finally:
        if leader.poll() is None:
            leader.kill()
        leader.wait()


def test_stop_process_tree_escalates_to_sigkill():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    stubborn = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline().strip() == "ready"
        assert stop_process_tree(stubborn.pid, stubborn.pid, timeout=0.5, on_wait=stubborn.poll) is True
        assert stubborn.wait(timeout=5) == -9
    finally:
        if stubborn.poll() is None:
            stubborn.kill()


def test_launcher_backends_are_pluggable(tmp_path):
    assert list_launchers() == ["local"] or "local" in list_launchers()
    assert isinstance(create_launcher(workspace=tmp_path), LocalLauncher)
    with pytest.raises(ConfigError, match="'launcher' parameter must be one of"):
        create_launcher("slurm")

    class RecordingLauncher(Launcher):
        submitted: list = []

        def submit(self, run, *, folds=None):
            self.submitted.append(run)
            return {"state": "queued"}

        def cancel(self, run, *, timeout=0):
            return {"state": "cancelled"}

    register_launcher("recording", RecordingLauncher)
    launcher = create_launcher("recording")
    assert launcher.submit("r1") == {"state": "queued"} and RecordingLauncher.submitted == ["r1"]


def test_job_command_and_environment(fake_run):
    launcher = LocalLauncher()
    cmd = launcher.job_command(fake_run, folds=[1, 2], devices=["cuda:0", "cuda:1"])
    assert cmd[1:4] == ["-m", "engine", "run-job"] and cmd[-4:] == ["--folds", "1,2", "--devices", "cuda:0,cuda:1"]
    env = launcher.job_env(fake_run)
    assert env["HF_HUB_OFFLINE"] == "1" and env["NO_ALBUMENTATIONS_UPDATE"] == "1"
    assert env["FOLD_STUDIO_WORKSPACE"] == str(fake_run.parent.parent)
    json.dumps(env)  # plain strings only
