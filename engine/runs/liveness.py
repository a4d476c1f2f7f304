"""Is a job really alive? The status a person should see for a run, whatever its status.json claims.

A job writes ``state: running`` and then a heartbeat (``updated_at``) every couple of seconds. If
its process is killed (SIGKILL, out of memory, a reboot), nobody writes ``failed``: the file keeps
saying ``running``. :func:`effective_status` is what the studio and the command line read instead of
the raw file: a queued or running run whose process is gone, or whose heartbeat is older than
:data:`HEARTBEAT_STALE_S`, is reported as ``failed`` with a message saying to resume it. It only
reads; the file is corrected by the next resume.

Whoever records a job's ``pid`` also records ``pid_started``, the start time of that process
(:func:`job_process_fields`): a pid the system has since given to another program is then not taken
for the job — neither by the liveness check nor by ``cancel``, which signals only the run's own job
process (:func:`check_job_process`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.errors import RunError
from engine.runs.status import ACTIVE_STATES, FINAL_STATES, fold_is_complete, read_status, run_progress
from engine.runs.timestamps import now_iso, parse_time, seconds_since

__all__ = [
    "ACTIVE_STATES", "FINAL_STATES", "GONE_MESSAGE", "HEARTBEAT_S", "HEARTBEAT_STALE_S", "check_job_process",
    "driven_remotely", "effective_status", "job_is_alive", "job_process_fields", "liveness_problem", "now_iso", "parse_time",
    "pid_alive", "process_start_token", "seconds_since", "with_liveness",
]

HEARTBEAT_S = 2.0
HEARTBEAT_STALE_S = 30.0
GONE_MESSAGE = "the training process is gone; resume it"


def _proc(pid: Any, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{int(pid)}/{name}").read_bytes()
    except (OSError, TypeError, ValueError):
        return None


def pid_alive(pid: Any) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a finished child nobody has waited for yet)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    stat = _proc(pid, "stat")
    if stat is None:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(b")", 1)[-1].split()[0] != b"Z"


def process_start_token(pid: Any) -> str | None:
    """When process ``pid`` started, as an opaque token (Linux: ``/proc/<pid>/stat`` starttime, clock ticks
    since boot); None when it does not exist or the system does not say."""
    stat = _proc(pid, "stat")
    if stat is None:
        return None
    fields = stat.rsplit(b")", 1)[-1].split()
    return fields[19].decode() if len(fields) > 19 else None


def job_process_fields(pid: int, pgid: int | None) -> dict[str, Any]:
    """The status fields naming a job's process: ``pid``, ``pgid`` and ``pid_started``."""
    return {"pid": pid, "pgid": pgid, "pid_started": process_start_token(pid)}


def _is_recorded_process(status: dict) -> bool | None:
    """Whether the live process ``status["pid"]`` is the one recorded (same start time); None when unknown."""
    recorded, current = status.get("pid_started"), process_start_token(status.get("pid"))
    if recorded is None or current is None:
        return None
    return str(recorded) == current


def job_is_alive(status: dict) -> bool:
    """Whether the process recorded in ``status`` is still running (the same process) and still beating."""
    if not pid_alive(status.get("pid")) or _is_recorded_process(status) is False:
        return False
    age = seconds_since(status.get("updated_at"))
    return age is None or age <= HEARTBEAT_STALE_S


def driven_remotely(status: dict) -> bool:
    """A job with no process here (``launcher`` names a cluster backend, ``pid`` is null): its driver may run
    on another machine, so its heartbeat is its only sign of life (see :mod:`engine.jobs.ray_launcher`)."""
    return status.get("launcher") not in (None, "local") and status.get("pid") is None


def liveness_problem(status: dict) -> str | None:
    """Why an active (queued / running) status cannot be trusted, or None when it can (or the run is final)."""
    if status.get("state") not in ACTIVE_STATES:
        return None
    pid = status.get("pid")
    if pid is None:
        # Created but never handed to a process: fine for a moment (the launcher is on its way).
        age = seconds_since(status.get("updated_at") or status.get("created_at"))
        if age is not None and age > HEARTBEAT_STALE_S:
            if driven_remotely(status):
                return (f"the run's driver ({status.get('driver') or status['launcher']}) has not reported for "
                        f"{age:.0f} s: the cluster, its node or the driver is gone; resume it")
            return "the run was never started (no training process picked it up); resume it"
        return None
    if not pid_alive(pid) or _is_recorded_process(status) is False:
        return GONE_MESSAGE
    age = seconds_since(status.get("updated_at"))
    if age is not None and age > HEARTBEAT_STALE_S:
        return (f"the training process (pid {pid}) has not reported for {age:.0f} s; "
                f"it is hung or gone: cancel and resume it")
    return None


def with_liveness(run_dir: str | os.PathLike, raw: dict) -> dict:
    """``raw`` (a run's status.json) as a person should see it: a dead job reported as ``failed``.

    Adds ``raw_state`` (what the file says) and ``alive`` (whether a process is working on it), and
    fills ``progress`` from the folds when the file lacks it.
    """
    status = dict(raw)
    status["raw_state"] = status.get("state")
    problem = liveness_problem(status)
    if problem is not None:
        status["state"] = "failed"
        status["error"] = problem
        status["alive"] = False
        # the fold that was training when the process died will not finish either (unless its files
        # were all written and only the status update was missed)
        status["folds"] = {k: ({**f, "state": "done" if fold_is_complete(run_dir, int(k)) else "failed"}
                               if f.get("state") == "running" else f)
                           for k, f in (status.get("folds") or {}).items()}
    else:
        status["alive"] = status.get("state") in ACTIVE_STATES and (status.get("pid") is not None
                                                                     or driven_remotely(status))
    if status.get("progress") is None:
        status["progress"] = run_progress(status)
    return status


def effective_status(run_dir: str | os.PathLike) -> dict:
    """The run's status as a person should see it (:func:`with_liveness` of its status.json).

    Raises :class:`~engine.errors.RunDamagedError` when the status cannot be read.
    """
    return with_liveness(run_dir, read_status(run_dir))


def _argv(pid: Any) -> list[str]:
    raw = _proc(pid, "cmdline") or b""
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _runs_the_engine(argv: list[str]) -> bool:
    """``python -m engine ...`` (a job, or the command line training in the foreground) or its console script."""
    return any(a == "-m" and b == "engine" for a, b in zip(argv, argv[1:], strict=False)) or (
        bool(argv) and Path(argv[0]).name == "fold-studio-engine")


def check_job_process(status: dict, run_dir: str | os.PathLike) -> None:
    """Refuse (:class:`RunError`) to signal the live process ``status["pid"]`` unless it is the run's own job:
    the process that started at the recorded ``pid_started`` — or, for a status that predates that
    field, a process running the engine's command line."""
    pid = status.get("pid")
    same = _is_recorded_process(status)
    argv = _argv(pid)
    if same is None and status.get("pid_started") is None and argv:
        same = _runs_the_engine(argv)
    if same is not False:
        return
    cmdline = " ".join(argv)
    shown = f" ({cmdline[:80]})" if cmdline else ""
    raise RunError(
        f"Run {Path(run_dir).name!r}: its status names process {pid}{shown}, which is not the run's training job "
        "(the system has given that pid to another program since); nothing was signalled. The job itself is gone: "
        "the run shows as failed and can be resumed.")
