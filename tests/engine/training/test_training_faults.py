"""Faults in the middle of a foreground ``python -m engine train``: the disk filling up while a fold's
predictions or weights are written, and Ctrl-C / SIGTERM between epochs or while predicting. After each:
a clear state, nothing lost, and ``resume`` finishes the run."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from engine.runs.store import fold_is_complete, read_status

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]


def fold_digests(run_dir: Path, fold: int) -> dict[str, str]:
    files = [run_dir / "weights" / f"fold{fold}.safetensors", *sorted((run_dir / "predictions").glob(f"fold{fold}_*"))]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


sys.path.insert(0, str(REPO_ROOT / "tests" / "engine" / "data"))
from dataset_builders import class_folders, tiny_run_config  # noqa: E402


def write_config(tmp_path: Path, **train) -> Path:
    """A two-fold run with a holdout over 2 x 8 images of 16 px (each fold trains in about a second)."""
    data = tiny_run_config(class_folders(tmp_path / "pets"), **train)
    data["split"]["holdout_fraction"] = 0.25
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "run.yaml"


# ---------------------------------------------------------------- the disk fills up


@pytest.mark.parametrize("full_at", ["fold1_holdout.parquet", "fold1.safetensors"])
def test_a_full_disk_fails_the_fold_with_the_reason_and_resume_finishes(full_at, tmp_path, workspace, monkeypatch,
                                                                        capsys):
    import engine.io
    from engine.cli import main

    real_write = engine.io.atomic_write

    def disk_full_at(path, write):
        if Path(path).name != full_at:
            return real_write(path, write)

        def partial(tmp):  # the file starts to be written, then the disk is full
            write(tmp)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

        return real_write(path, partial)

    monkeypatch.setattr(engine.io, "atomic_write", disk_full_at)
    import engine.runs.store  # writes weights through the name it imported

    monkeypatch.setattr(engine.runs.store, "atomic_write", disk_full_at)
    config = write_config(tmp_path)
    assert main(["train", str(config), "--workspace", str(workspace)]) == 1
    out = capsys.readouterr()
    (run_id,) = out.out.split()
    run_dir = workspace / "runs" / run_id
    assert "No space left on device" in out.err and "free disk space" in out.err
    status = read_status(run_dir)
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert "free disk space" in status["error"]
    assert status["folds"]["0"]["state"] == "done" and fold_is_complete(run_dir, 0)
    assert status["folds"]["1"]["state"] == "failed"
    assert "No space left on device" in status["folds"]["1"]["error"]
    assert not fold_is_complete(run_dir, 1)
    assert not list(run_dir.rglob("*.tmp")), "a half-written file was left behind"
    fold0 = fold_digests(run_dir, 0)

    monkeypatch.setattr(engine.io, "atomic_write", real_write)  # space is back
    monkeypatch.setattr(engine.runs.store, "atomic_write", real_write)
    assert main(["resume", run_id, "--workspace", str(workspace)]) == 0
    status = read_status(run_dir)
    assert status["state"] == "done" and status["error"] is None
    assert status["folds"]["1"]["state"] == "done" and not status["folds"]["1"].get("error")
    assert fold_digests(run_dir, 0) == fold0  # the earlier fold is untouched


# ---------------------------------------------------------------- Ctrl-C and SIGTERM


# The child is `python -m engine train` with one store function wrapped so that, after its first call, it
# says so (a marker file) and waits for the test's go-ahead: a signal then lands at a known step.
PAUSING_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import engine.runs
    import engine.runs.store as store
    point, marker = sys.argv[1], Path(sys.argv[2])
    real = getattr(store, point)
    def paused(*args, **kwargs):
        out = real(*args, **kwargs)
        if not marker.exists():
            marker.write_text(point)
            deadline = time.monotonic() + 120
            while not marker.with_suffix(".go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return out
    setattr(store, point, paused)
    setattr(engine.runs, point, paused)  # the name training calls (engine.runs re-exports the store's)
    from engine.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def train_until_paused(point: str, config: Path, workspace: Path, tmp_path: Path):
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", PAUSING_CHILD, point, str(marker), "train", str(config),
                              "--workspace", str(workspace)], cwd=REPO_ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the training never reached {point}: {child.communicate()}")
        time.sleep(0.02)
    return child, marker.with_suffix(".go")


@pytest.mark.parametrize("point, sig, to_group, num_workers", [
    ("append_metrics", signal.SIGINT, True, 2),  # Ctrl-C in a terminal: the whole group, DataLoader workers too
    ("write_predictions", signal.SIGTERM, False, 0),  # `kill PID` while the fold predicts
], ids=["ctrl-c-between-epochs", "sigterm-while-predicting"])
def test_a_signal_cancels_a_foreground_train_and_resume_finishes(point, sig, to_group, num_workers, tmp_path,
                                                                 workspace):
    from engine.cli import main

    config = write_config(tmp_path, epochs=2, num_workers=num_workers)
    child, go = train_until_paused(point, config, workspace, tmp_path)
    if to_group:
        os.killpg(child.pid, sig)
    else:
        child.send_signal(sig)
    time.sleep(0.3)  # the handlers run before the step goes on
    go.write_text("")
    out, err = child.communicate(timeout=300)
    (run_id,) = out.split()
    run_dir = workspace / "runs" / run_id
    assert child.returncode == 130, err
    assert "Traceback" not in err, err
    status = read_status(run_dir)
    assert status["state"] == "cancelled" and status["error"] is None, status
    assert status["folds"]["0"]["state"] == "cancelled" and status["folds"]["1"]["state"] == "queued"
    assert not fold_is_complete(run_dir, 0)
    if sig == signal.SIGINT:  # said once, by the training process (not again by each DataLoader worker)
        assert err.count("stopping at the next batch boundary") == 1, err
    else:
        assert (run_dir / "predictions" / "fold0_oof.parquet").is_file()  # stopped after the first subset

    assert main(["resume", run_id, "--workspace", str(workspace)]) == 0
    status = read_status(run_dir)
    assert status["state"] == "done" and all(f["state"] == "done" for f in status["folds"].values())
