"""Helpers for the tests that start real job processes: a tiny config, a patient wait, file digests."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

JOB_TIMEOUT_S = 300.0  # generous: a 2-core machine, and each job process imports torch + timm


def tiny_config(spec_path: Path, **train) -> dict:
    """A run that trains in seconds on CPU: timm's test_convnext3 at 32 px, k=2, a 10% holdout."""
    return {
        "dataset": str(spec_path),
        "model": {"name": "test_convnext3"},
        "image_size": 32,
        "split": {"k": 2, "holdout_fraction": 0.1, "seed": 0},
        "train": {"epochs": 1, "batch_size": 64, "num_workers": 0, "scheduler": "none", **train},
        "augment": None,
        "tta_views": ["identity"],
        "device": "cpu",
    }


def describe(run_dir: Path) -> str:
    """status.json and the tail of train.log, for a failure message."""
    status = (run_dir / "status.json").read_text() if (run_dir / "status.json").is_file() else "(no status)"
    log = (run_dir / "train.log").read_text(errors="replace")[-3000:] if (run_dir / "train.log").is_file() else ""
    return f"--- {run_dir.name} status.json:\n{status}\n--- train.log (tail):\n{log}"


def wait_for(
    predicate: Callable[[], bool], what: str, *, run_dirs=(), timeout: float = JOB_TIMEOUT_S, poll: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(describe(d) for d in run_dirs)
            )
        time.sleep(poll)


def file_digests(run_dir: Path, fold: int) -> dict[str, str]:
    """sha256 of every file fold ``fold`` owns (weights, predictions)."""
    files = [run_dir / "weights" / f"fold{fold}.safetensors", *sorted((run_dir / "predictions").glob(f"fold{fold}_*"))]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def kill_jobs(workspace: Path) -> None:
    """SIGKILL the process group of every job still alive in ``workspace`` (a failed test must leave none behind)."""
    import json
    import os
    import signal

    from engine.jobs.liveness import pid_alive

    for status_file in (Path(workspace) / "runs").glob("*/status.json"):
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            continue
        pid, pgid = status.get("pid"), status.get("pgid")
        if pid and pgid == pid and pgid != os.getpgrp() and pid_alive(pid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
