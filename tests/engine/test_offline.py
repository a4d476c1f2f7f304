"""The network policy: the user's HF_HUB_OFFLINE wins, a run's allow_download decides, a job's environment says so."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.offline import (
    OFFLINE_VAR,
    USER_VALUE_VAR,
    downloads_permitted,
    job_env,
    protect_process,
    user_forbids_downloads,
    why_no_download,
)


@pytest.mark.parametrize("user_value, forbids", [(None, False), ("", False), ("0", False), ("1", True), ("true", True),
                                                 ("ON", True), ("no", False)])
def test_the_users_value_is_kept_aside_before_the_engine_goes_offline(user_value, forbids):
    env = {} if user_value is None else {OFFLINE_VAR: user_value}
    protect_process(env)
    assert env[OFFLINE_VAR] == "1"  # the engine's own process never downloads, whatever the user said
    assert env["NO_ALBUMENTATIONS_UPDATE"] == "1"
    assert user_forbids_downloads(env) is forbids
    protect_process(env)  # a second time (a job process inherits the environment) keeps the user's value
    assert user_forbids_downloads({**env, OFFLINE_VAR: "1"}) is forbids


def test_downloads_need_the_runs_permission_and_no_user_offline():
    free, offline = {USER_VALUE_VAR: "", OFFLINE_VAR: "1"}, {USER_VALUE_VAR: "1", OFFLINE_VAR: "1"}
    assert downloads_permitted(True, free) and not downloads_permitted(False, free)
    assert not downloads_permitted(True, offline)
    assert "allow_download" in why_no_download(False, free) and why_no_download(True, free) is None
    assert "HF_HUB_OFFLINE=1" in why_no_download(True, offline)


def test_a_jobs_environment_is_offline_unless_its_run_may_download():
    base = {"PATH": "/bin", USER_VALUE_VAR: "", OFFLINE_VAR: "1"}
    assert job_env(allow_download=False, environ=base)[OFFLINE_VAR] == "1"
    allowed = job_env(allow_download=True, environ=base)
    assert allowed[OFFLINE_VAR] == "0" and allowed["PATH"] == "/bin" and allowed["PYTHONUNBUFFERED"] == "1"
    assert job_env(allow_download=True, environ={**base, USER_VALUE_VAR: "1"})[OFFLINE_VAR] == "1"
    assert job_env(allow_download=True, environ={OFFLINE_VAR: "1"})[OFFLINE_VAR] == "1"  # never protected: user's


def test_import_engine_records_the_users_setting():
    code = "import os, engine; print(os.environ['HF_HUB_OFFLINE'], repr(os.environ['FOLD_STUDIO_USER_HF_HUB_OFFLINE']))"
    env = {k: v for k, v in __import__("os").environ.items() if k not in (OFFLINE_VAR, USER_VALUE_VAR)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "''"]


def test_a_job_started_with_downloads_allowed_stays_online():
    env = job_env(allow_download=True, environ={USER_VALUE_VAR: "", OFFLINE_VAR: "1"})
    protect_process(env)  # what `import engine` does in the job process
    assert env[OFFLINE_VAR] == "0"


def test_the_engine_and_a_job_of_a_run_without_downloads_share_one_policy(tmp_path):
    """A user's HF_HUB_OFFLINE=0 met two policies before: kept in the process, overridden in the job."""
    import json
    import os
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = ("import json, os, engine; from engine.jobs.runner import job_environment; env = job_environment(); "
            "print(json.dumps({k: [os.environ[k], env[k]] for k in ('HF_HUB_OFFLINE', 'NO_ALBUMENTATIONS_UPDATE')}))")
    env = {k: v for k, v in os.environ.items() if k not in (OFFLINE_VAR, USER_VALUE_VAR, "NO_ALBUMENTATIONS_UPDATE")}
    env.update({OFFLINE_VAR: "0", "PYTHONPATH": str(repo)})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    assert json.loads(out.stdout) == {OFFLINE_VAR: ["1", "1"], "NO_ALBUMENTATIONS_UPDATE": ["1", "1"]}
