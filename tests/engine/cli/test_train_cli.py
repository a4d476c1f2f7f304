"""The training commands through the real command line: train, runs, status, cancel, resume, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from engine.jobs.launcher import _group_members
from engine.runs.store import read_status

REPO_ROOT = Path(__file__).resolve().parents[3]
TIMEOUT_S = 300.0


def cli(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO_ROOT
    )


def write_config(path: Path, spec_path: Path, **train) -> Path:
    config = {
        "dataset": str(spec_path),
        "model": {"name": "test_convnext3"},
        "image_size": 32,
        "split": {"k": 2, "holdout_fraction": 0.1, "seed": 0},
        "train": {"epochs": 1, "batch_size": 64, "num_workers": 0, "scheduler": "none", **train},
        "tta_views": ["identity"],
        "device": "cpu",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for(predicate, what: str, run_dir: Path, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            log = (
                (run_dir / "train.log").read_text(errors="replace")[-3000:] if (run_dir / "train.log").exists() else ""
            )
            pytest.fail(f"timed out waiting for {what}\nstatus: {read_status(run_dir)}\ntrain.log: {log}")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _no_stray_jobs(workspace, monkeypatch):
    # One thread per job: tiny models gain nothing from more, and jobs run side by side on 2 cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    sys.path.insert(0, str(REPO_ROOT / "tests" / "engine" / "jobs"))
    from job_helpers import kill_jobs

    kill_jobs(workspace)


def test_bad_config_is_refused_with_exit_2_before_anything_is_written(workspace, tmp_path, demo_spec_path):
    config = write_config(tmp_path / "run.yaml", demo_spec_path)
    data = yaml.safe_load(config.read_text())
    data["trian"] = data.pop("train")
    config.write_text(yaml.safe_dump(data))
    out = cli("train", str(config), "--workspace", str(workspace))
    assert out.returncode == 2, out
    assert out.stderr.startswith("error: ") and "trian" in out.stderr and "did you mean 'train'" in out.stderr
    assert out.stdout == ""

    out = cli(
        "train",
        str(write_config(tmp_path / "ok.yaml", demo_spec_path)),
        "--workspace",
        str(workspace),
        "--set",
        "train.optimizer=adagrad",
    )
    assert out.returncode == 2 and "train.optimizer" in out.stderr and "adagrad" in out.stderr
    assert not any((workspace / "runs").glob("*")), "a refused config wrote a run"


@pytest.mark.slow
def test_train_detach_cancel_resume_status_runs_predict(workspace, tmp_path, demo_spec_path, capsys):
    from engine.jobs.devices import device_lock

    config = write_config(tmp_path / "run.yaml", demo_spec_path)
    cpu = device_lock(workspace / "runs" / "x", "cpu")
    assert cpu.try_acquire("this test")  # the job will have to wait for the CPU
    out = cli("train", str(config), "--detach", "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    (run_id,) = out.stdout.split()
    run_dir = workspace / "runs" / run_id
    assert (run_dir / "config.yaml").is_file()

    wait_for(lambda: str(read_status(run_dir).get("message")).startswith("waiting for cpu"), "the job to queue", run_dir)
    out = cli("status", run_id, "--json", "--workspace", str(workspace))
    status = json.loads(out.stdout)
    assert status["state"] == "queued" and status["alive"] and status["message"] == "waiting for cpu (in use by this test)"

    pgid = status["pgid"]
    out = cli("cancel", run_id, "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{run_id}: cancelled"
    assert _group_members(pgid) == []
    assert read_status(run_dir)["state"] == "cancelled"
    cpu.release()

    out = cli("resume", str(run_dir), "--detach", "--workspace", str(workspace))  # RUN as a path works too
    assert out.returncode == 0 and out.stdout.strip() == run_id, out.stderr
    wait_for(lambda: read_status(run_dir)["state"] in ("done", "failed"), "the resumed run to end", run_dir)

    out = cli("status", run_id, "--workspace", str(workspace))
    assert out.returncode == 0 and out.stdout.startswith(f"run {run_id}: done  100%"), out.stdout
    assert "fold 1: done" in out.stdout and "best val_loss" in out.stdout

    out = cli("runs", "--json", "--workspace", str(workspace))
    (row,) = json.loads(out.stdout)
    assert row["run_id"] == run_id and row["state"] == "done" and row["folds_done"] == 2
    assert row["val_loss"] > 0 and 0 <= row["val_accuracy"] <= 1

    out = cli("predict", run_id, "--tta", "identity,hflip", "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    views = pd.read_parquet(run_dir / "predictions" / "fold0_oof.parquet")["view"]
    assert set(views) == {"identity", "hflip"}

    # refusals, in-process (same code path, no interpreter start)
    from engine.cli import main

    assert main(["resume", run_id, "--workspace", str(workspace)]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["cancel", run_id, "--workspace", str(workspace)]) == 2
    assert "not running (state: done)" in capsys.readouterr().err
    assert main(["predict", run_id, "--tta", "identity,sideways", "--workspace", str(workspace)]) == 2
    assert "sideways" in capsys.readouterr().err


@pytest.mark.slow
def test_train_in_the_foreground_prints_the_ids_and_records_the_run(workspace, tmp_path, demo_spec_path, capsys):
    from engine.cli import main

    config = write_config(tmp_path / "run.yaml", demo_spec_path)
    assert main(["train", str(config), "--workspace", str(workspace), "--set", "train.label_smoothing=0.1"]) == 0
    (run_id,) = capsys.readouterr().out.split()
    run_dir = workspace / "runs" / run_id
    status = read_status(run_dir)
    assert status["state"] == "done" and status["pid"] == os.getpid() and status["finished_at"]
    assert "training on cpu" in (run_dir / "train.log").read_text()

    assert main(["runs", "--workspace", str(workspace)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["run_id", "state", "progress"] and table[1].split()[:3] == [run_id, "done", "100%"]


def test_hub_weights_off_line_are_refused_and_allow_download_is_a_flag(workspace, tmp_path, demo_spec_path,
                                                                        monkeypatch, capsys):
    from engine.cli import main  # in-process: the flag's way into the config is what is tested here

    config = write_config(tmp_path / "hub.yaml", demo_spec_path)
    args = ["train", str(config), "--workspace", str(workspace), "--set", "model.name=test_resnet",
            "--set", "model.pretrained=hub"]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("FOLD_STUDIO_USER_HF_HUB_OFFLINE", "")  # as if the user had not set HF_HUB_OFFLINE
    assert main(args) == 2
    refused = capsys.readouterr().err
    assert "'model.allow_download' is false" in refused and "--allow-download" in refused
    assert str(tmp_path / "empty-cache") in refused and "timm/test_resnet.r160_in1k" in refused
    monkeypatch.setenv("FOLD_STUDIO_USER_HF_HUB_OFFLINE", "1")  # the user's HF_HUB_OFFLINE=1 wins over the flag
    assert main([*args, "--allow-download"]) == 2
    assert "HF_HUB_OFFLINE=1 is set in your environment" in capsys.readouterr().err
    assert not (workspace / "runs").exists() or not list((workspace / "runs").iterdir())
