"""A launcher that trains in the calling process: ``python -m engine train`` / ``resume`` without ``--detach``.

The runs are the same jobs a background launcher starts (:func:`engine.jobs.runner.run_job`: heartbeat,
device queue, one writer of the final state), run one after another in this process. Every run is
claimed at once (this pid and a heartbeat), so the runs still waiting their turn never look abandoned;
Ctrl-C stops the run in training at the next batch boundary and the waiting ones are marked cancelled.
``cancel`` from another shell works as for a background job: it signals this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.jobs.launcher import LocalLauncher
from engine.jobs.runner import Heartbeat, StopFlag, job_environment, logging_to_run, run_job
from engine.runs import mark_finished, update_status
from engine.runs.liveness import effective_status, job_process_fields

# A run's progress display: called with the training loop's events, closed when the run ends.
ProgressFactory = Callable[[Path], Any]


class ForegroundLauncher(LocalLauncher):
    """Trains each submitted run in this process, one after another.

    ``progress(run_dir)`` makes the progress callback of one run (called with each event; its
    ``close()``, when it has one, is called when the run ends); ``announce(run_dir)`` is called for
    each run once it is claimed, before any training starts.
    """

    def __init__(self, workspace: str | os.PathLike | None = None, *, progress: ProgressFactory | None = None,
                 announce: Callable[[Path], None] | None = None) -> None:
        super().__init__(workspace)
        self.progress = progress
        self.announce = announce
        self.stop = StopFlag()

    def submit(self, run: str | os.PathLike, *, folds: Sequence[int] | None = None,
               devices: Sequence[str] | None = None) -> dict:
        return self._train_all([self.run_dir(run)], folds=folds)[0]

    def submit_all(self, runs: Sequence[str | os.PathLike]) -> list[dict]:
        return self._train_all([self.run_dir(run) for run in runs])

    def _train_all(self, run_dirs: list[Path], *, folds: Sequence[int] | None = None) -> list[dict]:
        for run_dir in run_dirs:
            update_status(run_dir, **job_process_fields(os.getpid(), os.getpgrp()))
            if self.announce is not None:
                self.announce(run_dir)
        waiting = Heartbeat(run_dirs).start()
        try:
            for run_dir in run_dirs:
                waiting.run_dirs.remove(run_dir)
                if self.stop():
                    mark_finished(run_dir, "cancelled")
                else:
                    self._train_one(run_dir, folds=folds)
        finally:
            waiting.stop()
        return [effective_status(run_dir) for run_dir in run_dirs]

    def _train_one(self, run_dir: Path, *, folds: Sequence[int] | None) -> str:
        error = fetch_weights_in_child(run_dir)
        if error is not None:
            mark_finished(run_dir, "failed", error=error)
            return "failed"
        progress = self.progress(run_dir) if self.progress is not None else None
        try:
            with logging_to_run(run_dir):
                return run_job(run_dir, folds=folds, progress=progress, foreground=True, stop=self.stop)
        finally:
            if hasattr(progress, "close"):
                progress.close()


def fetch_weights_in_child(run_dir: Path) -> str | None:
    """Download the weights a run was created to download, in a child process; the error text, or None.

    This process stays off-line whatever the run allows (:mod:`engine.offline`), so the download happens
    where a background job would do it: in a process with the job's environment (``run-job
    --fetch-weights-only``). A run with nothing to fetch starts no process.
    """
    from engine.training.config import read_run_config

    cfg = read_run_config(run_dir)
    source = cfg.model.weights_source
    if cfg.model.pretrained == "none" or source is None or source.path:
        return None
    done = subprocess.run([sys.executable, "-m", "engine", "run-job", str(run_dir), "--fetch-weights-only"],
                          env=job_environment(run_dir), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return said[-1] if said else (lines[-1] if lines else f"fetching the weights failed (exit {done.returncode})")
