"""The process launching training SIGKILLed half-way — what the studio's *Launch* does (``launch_training``: create
the runs of a study, then start a job per run), killed at a chosen step: while a run's files are being written,
between the runs of a study, and after the first job started. After each: no run that cannot be opened, no part
of a study, a started job that goes on, and a fresh studio (AppTest) that shows where things stand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from job_helpers import kill_jobs, wait_for

from engine.runs import list_runs, read_run, read_status, run_dirs, update_status
from engine.runs.store import STALE_STAGING_S, list_studies

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
APP = str(REPO_ROOT / "studio" / "app.py")

sys.path.insert(0, str(REPO_ROOT / "tests" / "engine" / "data"))
from dataset_builders import class_folders, tiny_run_config  # noqa: E402

# The child launches a study the way the Train page does, with one function wrapped so that after its n-th call it
# says so (a marker file) and hangs: the test then SIGKILLs it at that very step.
KILLED_LAUNCH = textwrap.dedent("""
    import importlib, sys, time
    from pathlib import Path
    target, nth, marker, config, workspace = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5]
    module, _, attr = target.partition(":")
    owner = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    real, calls = getattr(owner, name), []
    def hang_after(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == nth:
            marker.write_text(target)
            time.sleep(600)
        return out
    setattr(owner, name, hang_after)
    from engine.jobs import launch_training
    launch_training(config, workspace=workspace)
""")


@pytest.fixture
def study_config(tmp_path) -> Path:
    """Two runs (label smoothing 0.0 and 0.1) over 2 x 8 images of 16 px: each trains in about a second."""
    data = {**tiny_run_config(class_folders(tmp_path / "pets")), "vary": {"train.label_smoothing": [0.0, 0.1]}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "study.yaml"


@pytest.fixture(autouse=True)
def _no_stray_jobs(workspace, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    kill_jobs(workspace)


def launch_and_kill(target: str, nth: int, config: Path, workspace: Path, tmp_path: Path) -> None:
    """Run the launch in a child process until ``target`` returned for the ``nth`` time, then SIGKILL it."""
    marker = tmp_path / "reached"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", KILLED_LAUNCH, target, str(nth), str(marker), str(config),
                              str(workspace)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                pytest.fail(f"the launch never reached {target} #{nth}: {child.communicate()}")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL


def open_train_page(workspace: Path, spec: Path, monkeypatch):
    """The Train page of a studio started now (a fresh AppTest: nothing carried over from the killed process)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(workspace))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(spec))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/train.py").run()
    assert not at.exception, at.exception
    return at


def test_a_launch_killed_between_the_runs_of_a_study_leaves_nothing_listed_and_is_cleaned_up_later(
        study_config, workspace, tmp_path, monkeypatch):
    # atomic_write_parquet writes each run's split: its 2nd call is inside the second run, the first run complete
    launch_and_kill("engine.runs.store:atomic_write_parquet", 2, study_config, workspace, tmp_path)

    assert run_dirs(workspace) == [] and list_runs(workspace).empty, "a run of a half-written study is listed"
    assert list_studies(workspace) == []
    staging = sorted((workspace / "runs").glob(".creating-*"))
    assert len(staging) == 2  # what the killed launch had written, under hidden names
    at = open_train_page(workspace, study_config.parent / "pets", monkeypatch)
    assert any("No runs yet" in i.value for i in at.info)

    # The next launch removes what is left once nobody can still be writing it (untouched for an hour).
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    long_ago = time.time() - STALE_STAGING_S - 60
    for folder in staging:
        os.utime(folder, (long_ago, long_ago))
    created = create_runs(load_run_configs(yaml.safe_load(study_config.read_text())), workspace=workspace)
    assert not list((workspace / "runs").glob(".creating-*"))
    assert [p.name for p in run_dirs(workspace)] == sorted(p.name for p in created)
    (study,) = list_studies(workspace)
    assert sorted(study["runs"]) == sorted(p.name for p in created)


def test_a_staging_folder_still_being_written_is_left_alone(study_config, workspace):
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    busy = workspace / "runs" / ".creating-20240101-000000-abcdef-busy"
    busy.mkdir(parents=True)
    create_runs(load_run_configs(tiny_run_config(study_config.parent / "pets")), workspace=workspace)
    assert busy.is_dir()


def test_a_failed_write_removes_the_runs_of_the_study_already_written(study_config, workspace, monkeypatch):
    """An error half-way (the disk full on the second run) leaves no run and no study file behind."""
    import errno

    import engine.runs.store as store
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    real, calls = store.atomic_write_parquet, []

    def full_on_the_second_run(path, frame):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, frame)

    monkeypatch.setattr(store, "atomic_write_parquet", full_on_the_second_run)
    with pytest.raises(OSError, match="No space left"):
        create_runs(load_run_configs(yaml.safe_load(study_config.read_text())), workspace=workspace)
    assert len(calls) == 2
    assert list((workspace / "runs").iterdir()) == [] and list_studies(workspace) == []


def test_a_launch_killed_after_the_first_job_started(study_config, workspace, tmp_path, monkeypatch):
    """The first run's job goes on to the end without the process that started it; the second run, created but
    never handed to a job, shows as failed with what to do, and Resume in a new studio trains it."""
    launch_and_kill("engine.jobs.launcher:LocalLauncher.submit", 1, study_config, workspace, tmp_path)
    first, second = sorted(run_dirs(workspace), key=lambda d: read_status(d)["name"])
    assert {d.name for d in (first, second)} == set(list_studies(workspace)[0]["runs"])
    job = read_status(first)
    assert job["pid"] and read_status(second)["pid"] is None
    wait_for(lambda: read_status(first)["state"] == "done", "the orphaned job to finish", run_dirs=[first])
    assert all(f["state"] == "done" for f in read_status(first)["folds"].values())

    # The studio comes back a minute later: the run nobody started is no longer "queued" but failed, resumable.
    update_status(second, updated_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
    at = open_train_page(workspace, study_config.parent / "pets", monkeypatch)
    states = at.dataframe[0].value.set_index("run_id")["state"]
    assert states[first.name].endswith("done") and states[second.name].endswith("failed")
    at.selectbox(key="train_selected_run").set_value(second.name).run()
    assert any("never started" in e.value and "resume it" in e.value for e in at.error)
    at.button(key=f"resume_{second.name}").click().run()
    assert not at.exception
    wait_for(lambda: read_status(second)["state"] == "done", "the resumed run", run_dirs=[second])
    assert not read_run(second).damaged and not read_run(first).damaged
