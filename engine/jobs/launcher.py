"""The launcher interface (submit, status, cancel, resume) and its default backend, local processes.

The run directory is the job's record whatever the backend: a launcher starts something that
trains the run and records its status in the run directory; everything else (the studio's pages, the analysis, the
command line) reads the run directory and never asks the backend. A cluster backend (Ray is the
intended one) implements :class:`Launcher` and registers itself with :func:`register_launcher`.

:class:`LocalLauncher` runs each job as a detached process (``python -m engine run-job RUN_DIR``,
new session, output appended to the run's log); jobs asking for the same device queue on
a lock file (see :mod:`engine.jobs.devices`), so submitting a whole study at once is fine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import RunError
from engine.jobs.runner import job_environment, unfinished_folds
from engine.runs import log_path, read_status, run_dir_of, update_status
from engine.runs.liveness import (
    ACTIVE_STATES,
    check_job_process,
    effective_status,
    job_process_fields,
    now_iso,
    pid_alive,
)

CANCEL_TIMEOUT_S = 30.0
_CHILDREN: list[subprocess.Popen] = []  # jobs started by this process (any launcher instance), until reaped


class Launcher(ABC):
    """Runs training jobs. Every method takes a run id or a run directory path."""

    def __init__(self, workspace: str | os.PathLike | None = None) -> None:
        self.workspace = workspace

    def run_dir(self, run: str | os.PathLike) -> Path:
        return Path(run_dir_of(run, workspace=self.workspace)).absolute()

    @abstractmethod
    def submit(self, run: str | os.PathLike, *, folds: Sequence[int] | None = None) -> dict:
        """Start training the run's unfinished folds (among ``folds``) in the background; return its status."""

    def check(self, configs: Sequence[Any] = ()) -> None:  # noqa: B027 - optional hook: most backends take any job
        """Raise :class:`~engine.errors.EngineError` when this backend cannot take jobs now, or cannot ever train
        one of ``configs`` (run configs about to be created): called before anything is written."""

    def config_fields(self) -> dict[str, str | None]:
        """The run-config fields (``launcher``, ``ray_address``) that choose this backend again, e.g. for the
        trials a search starts later in another process."""
        return {"launcher": "local", "ray_address": None}

    def submit_all(self, runs: Sequence[str | os.PathLike]) -> list[dict]:
        """Submit several runs (a study); return their statuses. Backends may start them together."""
        return [self.submit(run) for run in runs]

    def status(self, run: str | os.PathLike) -> dict:
        """The run's status as a person should see it (a dead job shows as ``failed``)."""
        return effective_status(self.run_dir(run))

    @abstractmethod
    def cancel(self, run: str | os.PathLike, *, timeout: float = CANCEL_TIMEOUT_S) -> dict:
        """Stop the run at the next batch boundary and mark it ``cancelled``; return its status."""

    def resume(self, run: str | os.PathLike) -> dict:
        """Train the run again from its first unfinished fold (finished folds stay untouched)."""
        run_dir = prepare_resume(self.run_dir(run))
        return self.submit(run_dir)


def prepare_resume(run_dir: Path) -> Path:
    """Check that ``run_dir`` may be resumed and reset its status to ``queued``; raise :class:`RunError` if not."""
    status = effective_status(run_dir)
    if status["state"] in ACTIVE_STATES:
        who = f" (pid {status['pid']})" if status.get("pid") else ""
        raise RunError(f"Run {run_dir.name!r} is {status['state']}{who}; wait for it to finish, "
                       f"or cancel it first (python -m engine cancel {run_dir.name}).")
    left = unfinished_folds(run_dir)
    if not left and status.get("raw_state") == "done":
        raise RunError(f"Run {run_dir.name!r} is done: every fold is trained, nothing to resume. "
                       f"To predict other TTA views use: python -m engine predict {run_dir.name} --tta VIEWS.")
    # launcher=None: no backend owns the run until the next submit says which (a Ray run has no pid to check)
    update_status(run_dir, state="queued", pid=None, pgid=None, pid_started=None, launcher=None, error=None,
                  finished_at=None, message=f"resuming at fold {left[0]}" if left else "resuming")
    return run_dir


class LocalLauncher(Launcher):
    """Each job is a detached local process (its own session and process group); the default backend."""

    def __init__(self, workspace: str | os.PathLike | None = None, *, python: str | None = None) -> None:
        super().__init__(workspace)
        self.python = python or sys.executable

    @staticmethod
    def _reap() -> None:
        """Collect finished jobs this process started, so they do not linger as zombies."""
        _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]

    def job_command(self, run_dir: Path, *, folds: Sequence[int] | None = None,
                    devices: Sequence[str] | None = None) -> list[str]:
        cmd = [self.python, "-m", "engine", "run-job", str(run_dir)]
        if folds is not None:
            cmd += ["--folds", ",".join(str(int(f)) for f in folds)]
        if devices:
            cmd += ["--devices", ",".join(devices)]
        return cmd

    def job_env(self, run_dir: Path) -> dict[str, str]:
        return job_environment(run_dir)

    def submit(self, run: str | os.PathLike, *, folds: Sequence[int] | None = None,
               devices: Sequence[str] | None = None) -> dict:
        """Start the job detached; return its status. ``devices`` (internal) spreads folds over several processes."""
        self._reap()
        run_dir = self.run_dir(run)
        status = effective_status(run_dir)
        if status.get("alive"):
            raise RunError(f"Run {run_dir.name!r} already has a job (pid {status.get('pid')}, "
                           f"state {status['state']}); cancel it first.")
        update_status(run_dir, state="queued", pid=None, pgid=None, pid_started=None, error=None, finished_at=None,
                      message="starting")
        with open(log_path(run_dir), "ab") as log_file:
            log_file.write(f"\n=== job submitted {now_iso()} ===\n".encode())
            log_file.flush()
            proc = subprocess.Popen(self.job_command(run_dir, folds=folds, devices=devices),
                                    env=self.job_env(run_dir), stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        _CHILDREN.append(proc)
        # The job writes the same pid itself; writing it now closes the window in which it looks unstarted.
        update_status(run_dir, **job_process_fields(proc.pid, proc.pid))
        return effective_status(run_dir)

    def cancel(self, run: str | os.PathLike, *, timeout: float = CANCEL_TIMEOUT_S) -> dict:
        """Signal the run's job process (only when it is the run's own job, :func:`check_job_process`);
        a run whose job is already gone is just marked cancelled."""
        from engine.runs import mark_finished

        self._reap()
        run_dir = self.run_dir(run)
        status = read_status(run_dir)
        if status.get("state") not in ACTIVE_STATES:
            raise RunError(f"Run {run_dir.name!r} is not running (state: {status.get('state')}); nothing to cancel.")
        pid, pgid = status.get("pid"), status.get("pgid")
        if pid is not None and pid_alive(pid):
            check_job_process(status, run_dir)
            stop_process_tree(pid, pgid, timeout=timeout, on_wait=self._reap)
        self._reap()
        if read_status(run_dir).get("state") in ACTIVE_STATES:  # killed before it could say so, or never started
            mark_finished(run_dir, "cancelled")
        return effective_status(run_dir)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux /proc; empty elsewhere)."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def stop_process_tree(pid: int, pgid: int | None, *, timeout: float = CANCEL_TIMEOUT_S,
                      on_wait: Callable[[], None] | None = None) -> bool:
    """SIGTERM the job's process group (just ``pid`` when it leads no group of its own), wait up to ``timeout``
    seconds for the group to exit, then SIGKILL what is left. Returns True when it had to kill."""
    # Signal the group only when the job leads it: a foreground job shares its shell's (or a test's) group.
    group = pgid if pgid and int(pgid) == int(pid) and int(pgid) != os.getpgrp() else None

    def send(sig: int) -> None:
        try:
            os.killpg(group, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def alive() -> bool:
        if on_wait is not None:
            on_wait()
        return pid_alive(pid) or bool(group and _group_members(group))

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not alive():
        return False
    send(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def _ray_launcher(**kwargs) -> Launcher:
    from engine.jobs.ray_launcher import RayLauncher  # imports ray only when it is asked for

    return RayLauncher(**kwargs)


_LAUNCHERS: dict[str, Callable[..., Launcher]] = {"local": LocalLauncher, "ray": _ray_launcher}


def register_launcher(name: str, factory: Callable[..., Launcher]) -> None:
    """Make a backend available to :func:`create_launcher` (e.g. ``register_launcher("ray", RayLauncher)``)."""
    _LAUNCHERS[name] = factory


def list_launchers() -> list[str]:
    return sorted(_LAUNCHERS)


def create_launcher(name: str | None = None, *, workspace: str | os.PathLike | None = None, **kwargs) -> Launcher:
    """The launcher backend ``name`` (default: $FOLD_STUDIO_LAUNCHER, else ``local``)."""
    from engine.errors import ConfigError

    name = name or os.environ.get("FOLD_STUDIO_LAUNCHER") or "local"
    if name not in _LAUNCHERS:
        raise ConfigError(f"The 'launcher' parameter must be one of {list_launchers()}. Got {name!r} instead.")
    return _LAUNCHERS[name](workspace=workspace, **kwargs)
