"""Is a job really alive? The status a person should see for a run, whatever its status.json claims.

A job writes ``state: running`` and then a heartbeat (``updated_at``) every couple of seconds. If
its process is killed (SIGKILL, out of memory, a reboot), nobody writes ``failed``: the file keeps
saying ``running``. :func:`effective_status` is what the studio and the command line read instead of
the raw file: a queued or running run whose process is gone, or whose heartbeat is older than
:data:`HEARTBEAT_STALE_S`, is reported as ``failed`` with a message saying to resume it. It only
reads; the file is corrected by the next resume.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HEARTBEAT_S = 2.0
HEARTBEAT_STALE_S = 30.0
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")
GONE_MESSAGE = "the training process is gone; resume it"


def now_iso() -> str:
    """The current time as ISO-8601 with a UTC offset (the format of every timestamp in status.json)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(value: Any) -> datetime | None:
    """Parse a status timestamp (ISO-8601; naive ones are taken as local time); None when absent or unreadable."""
    if not value:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.astimezone()


def seconds_since(value: Any) -> float | None:
    moment = parse_time(value)
    return None if moment is None else (datetime.now(UTC) - moment).total_seconds()


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
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def job_is_alive(status: dict) -> bool:
    """Whether the process recorded in ``status`` is still running and still beating."""
    if not pid_alive(status.get("pid")):
        return False
    age = seconds_since(status.get("updated_at"))
    return age is None or age <= HEARTBEAT_STALE_S


def liveness_problem(status: dict) -> str | None:
    """Why an active (queued / running) status cannot be trusted, or None when it can (or the run is final)."""
    if status.get("state") not in ACTIVE_STATES:
        return None
    pid = status.get("pid")
    if pid is None:
        # Created but never handed to a process: fine for a moment (the launcher is on its way).
        age = seconds_since(status.get("updated_at") or status.get("created_at"))
        if age is not None and age > HEARTBEAT_STALE_S:
            return "the run was never started (no training process picked it up); resume it"
        return None
    if not pid_alive(pid):
        return GONE_MESSAGE
    age = seconds_since(status.get("updated_at"))
    if age is not None and age > HEARTBEAT_STALE_S:
        return (f"the training process (pid {pid}) has not reported for {age:.0f} s; "
                f"it is hung or gone: cancel and resume it")
    return None


def effective_status(run_dir: str | os.PathLike) -> dict:
    """The run's status as a person should see it: status.json, with a dead job reported as ``failed``.

    Adds ``raw_state`` (what the file says) and ``alive`` (whether a process is working on it), and
    fills ``progress`` from the folds when the file lacks it.
    """
    from engine.runs.store import read_status

    status = dict(read_status(run_dir))
    status["raw_state"] = status.get("state")
    problem = liveness_problem(status)
    if problem is not None:
        status["state"] = "failed"
        status["error"] = problem
        status["alive"] = False
        # the fold that was training when the process died will not finish either (unless its files
        # were all written and only the status update was missed)
        status["folds"] = {k: ({**f, "state": _dead_fold_state(run_dir, k)} if f.get("state") == "running" else f)
                           for k, f in (status.get("folds") or {}).items()}
    else:
        status["alive"] = status.get("state") in ACTIVE_STATES and status.get("pid") is not None
    if status.get("progress") is None:
        status["progress"] = folds_progress(status)
    return status


def _dead_fold_state(run_dir, fold: str) -> str:
    from engine.runs.store import fold_is_complete

    return "done" if fold_is_complete(run_dir, int(fold)) else "failed"


def folds_progress(status: dict) -> float:
    """Overall progress in [0, 1] from the per-fold entries (done folds count 1, a running one its share)."""
    folds = status.get("folds") or {}
    if not folds:
        return 1.0 if status.get("state") == "done" else 0.0
    total = 0.0
    for fold in folds.values():
        if fold.get("state") == "done":
            total += 1.0
            continue
        epochs, batches = fold.get("epochs") or 0, fold.get("batches") or 0
        epoch, batch = fold.get("epoch") or 0, fold.get("batch") or 0
        if epochs and batches:
            # ``epoch`` is the epoch in progress (1-based) or finished; count finished batches
            done = max(0, epoch - 1) * batches + min(batch, batches)
            total += min(1.0, done / (epochs * batches))
    return round(total / len(folds), 4)
