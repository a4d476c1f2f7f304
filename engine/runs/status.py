"""``status.json``: the run's state, read (validated), updated (atomic, locked) and finished.

Every update is a read-merge-write under a lock (a thread lock plus an advisory file lock), so the
training loop, a heartbeat thread and a ``cancel`` from another process never lose each other's
fields; the write is atomic (temp file + rename), so a reader never sees half a file.

Who writes what (docs/formats.md):

- the store writes the first status (``queued``) when a run is created;
- the training code (:mod:`engine.training.fit`) writes the per-fold entries (``folds.<k>``) and the
  run's ``progress`` follows from them (:func:`run_progress`, the one formula);
- whoever runs a training session writes the run-level state, through :func:`mark_running` and
  :func:`mark_finished` only: the job layer (:mod:`engine.jobs.runner`) for jobs, and
  :func:`engine.training.train_run` when a script trains in its own process. One session, one writer.

A status that cannot be read or has fields of the wrong type raises :class:`~engine.errors.RunDamagedError`
naming the file and what is wrong; the run listing shows such a run as ``damaged``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.errors import RunDamagedError, RunError
from engine.io import atomic_write_json
from engine.runs.layout import SUBSETS, predictions_path, status_lock_path, status_path, weights_path
from engine.runs.timestamps import now_iso

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")
DAMAGED = "damaged"  # not written to any file: the state a listing gives a run whose status cannot be read
_STATUS_LOCK = threading.RLock()

_TEXT_FIELDS = ("run_id", "name", "study_id", "device", "error", "message")
_TIME_FIELDS = ("created_at", "started_at", "updated_at", "finished_at")
_INT_FIELDS = ("pid", "pgid")
_FOLD_INT_FIELDS = ("epoch", "epochs", "batch", "batches", "best_epoch", "pid")


# ---------------------------------------------------------------- reading


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fold_problems(key: Any, fold: Any) -> list[str]:
    where = f"'folds.{key}'"
    if not (isinstance(key, str) and key.isdigit()):
        return [f"'folds' must be keyed by fold numbers ('0', '1', ...), got key {key!r}"]
    if not isinstance(fold, Mapping):
        return [f"{where} must be an object, got {_shown(fold)}"]
    problems = []
    if "state" in fold and fold["state"] not in STATES:
        problems.append(f"{where}.state must be one of {list(STATES)}, got {_shown(fold['state'])}")
    problems += [f"{where}.{k} must be an integer or null, got {_shown(fold[k])}"
                 for k in _FOLD_INT_FIELDS if fold.get(k) is not None and not _is_int(fold[k])]
    if fold.get("best_metric") is not None and not isinstance(fold["best_metric"], (int, float)):
        problems.append(f"{where}.best_metric must be a number or null, got {_shown(fold['best_metric'])}")
    return problems


def status_problems(data: Any) -> list[str]:
    """What is wrong with a parsed status (empty when it can be used): type and value of every known field."""
    if not isinstance(data, Mapping):
        return [f"it holds a JSON {type(data).__name__} instead of an object"]
    problems = []
    if data.get("state") not in STATES:
        problems.append(f"'state' must be one of {list(STATES)}, got {_shown(data.get('state'))}")
    progress = data.get("progress")
    if progress is not None and not (_is_number(progress) and 0.0 <= progress <= 1.0):
        problems.append(f"'progress' must be a number in [0, 1] or null, got {_shown(progress)}")
    folds = data.get("folds")
    if folds is not None and not isinstance(folds, Mapping):
        problems.append(f"'folds' must be an object of fold number -> fold state, got {_shown(folds)}")
    for key, fold in (folds.items() if isinstance(folds, Mapping) else ()):
        problems += _fold_problems(key, fold)
    subsets = data.get("subsets")
    if subsets is not None and not (isinstance(subsets, list) and all(s in SUBSETS for s in subsets)):
        problems.append(f"'subsets' must be a list among {list(SUBSETS)}, got {_shown(subsets)}")
    problems += [f"{k!r} must be an integer or null, got {_shown(data[k])}"
                 for k in _INT_FIELDS if data.get(k) is not None and not _is_int(data[k])]
    problems += [f"{k!r} must be text or null, got {_shown(data[k])}"
                 for k in (*_TEXT_FIELDS, *_TIME_FIELDS) if data.get(k) is not None and not isinstance(data[k], str)]
    return problems


def _damaged(run_dir: Path, what: str) -> RunDamagedError:
    return RunDamagedError(
        f"Run {run_dir.name!r} is damaged: {str(status_path(run_dir))!r} {what}. Nothing else in the run directory "
        "was touched; restore the file, or delete the run directory if the run is not needed.")


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's status.json as a dict. :class:`RunError` without one; :class:`RunDamagedError` (naming the
    file and every problem) when it is not UTF-8 JSON, not an object, or a known field has the wrong type."""
    run_dir = Path(run_dir)
    try:
        raw = status_path(run_dir).read_bytes()
    except FileNotFoundError:
        raise RunError(f"Run directory {str(run_dir)!r} has no status.json.") from None
    except OSError as e:
        raise _damaged(run_dir, f"cannot be read ({e.strerror or e})") from None
    if not raw.strip():
        raise _damaged(run_dir, "is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _damaged(run_dir, "is not text (binary bytes)") from None
    except json.JSONDecodeError as e:
        raise _damaged(run_dir, f"is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    problems = status_problems(data)
    if problems:
        raise _damaged(run_dir, "has fields of the wrong type: " + "; ".join(problems))
    return data


def expected_subsets(run_dir: str | Path) -> list[str]:
    """The prediction subsets each fold of the run writes (``oof``, and ``holdout`` / ``test`` when it has them)."""
    return list(read_status(run_dir).get("subsets") or SUBSETS)


def fold_is_complete(run_dir: str | Path, fold: int) -> bool:
    """True when the fold has its weights and every prediction file the run expects."""
    if not weights_path(run_dir, fold).is_file():
        return False
    return all(predictions_path(run_dir, fold, s).is_file() for s in expected_subsets(run_dir))


# ---------------------------------------------------------------- progress (the one formula)


def fold_share(fold: Mapping[str, Any]) -> float:
    """How much of one fold is done, in [0, 1]: 1 when done, else finished epochs plus the share of
    batches of the epoch in progress (``epoch`` is 1-based while it runs; unknown batches count 0)."""
    if fold.get("state") == "done":
        return 1.0
    epochs = int(fold.get("epochs") or 0)
    if epochs <= 0:
        return 0.0
    batches, batch = int(fold.get("batches") or 0), int(fold.get("batch") or 0)
    within = min(batch, batches) / batches if batches > 0 else 0.0
    return min(max((max(int(fold.get("epoch") or 0) - 1, 0) + within) / epochs, 0.0), 1.0)


def run_progress(status: Mapping[str, Any]) -> float:
    """Overall progress in [0, 1]: every fold counts equally (:func:`fold_share`); a run without folds
    is 1 when done, else 0."""
    folds = status.get("folds") or {}
    if not folds:
        return 1.0 if status.get("state") == "done" else 0.0
    return round(sum(fold_share(f) for f in folds.values()) / len(folds), 4)


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def status_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run's status lock against this process's threads and other processes (not re-entrant:
    a nested hold from the same thread would wait for itself on the file lock)."""
    with _STATUS_LOCK:
        try:
            import fcntl
        except ImportError:  # not POSIX: the thread lock is all we have
            yield
            return
        with open(status_lock_path(run_dir), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _merge(into: dict, fields: Mapping) -> dict:
    for key, value in fields.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def update_status(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json (nested dicts merge key by key) and return it. ``updated_at``
    is stamped with :func:`~engine.runs.timestamps.now_iso` unless ``fields`` sets it."""
    run_dir = Path(run_dir)
    with status_lock(run_dir):
        status = read_status(run_dir) if status_path(run_dir).is_file() else {}
        _merge(status, fields)
        if "updated_at" not in fields:
            status["updated_at"] = now_iso()
        atomic_write_json(status_path(run_dir), status)
        return status


def update_fold_status(run_dir: str | Path, fold: int, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status["folds"][str(fold)]`` and refresh the overall ``progress``."""
    run_dir = Path(run_dir)
    with status_lock(run_dir):
        status = read_status(run_dir)
        folds = status.setdefault("folds", {})
        folds.setdefault(str(int(fold)), {}).update(fields)
        status["progress"] = run_progress(status)
        status["updated_at"] = now_iso()
        atomic_write_json(status_path(run_dir), status)
        return status


def initial_status(run_id: str, *, name: str | None, study_id: str | None, subsets: list[str], folds: int,
                   epochs: int) -> dict[str, Any]:
    """The status of a run just created: ``queued``, every fold queued."""
    created = now_iso()
    fold = {"state": "queued", "epoch": 0, "epochs": epochs, "batch": 0, "batches": 0, "best_metric": None}
    return {
        "run_id": run_id, "name": name, "study_id": study_id, "state": "queued", "pid": None, "device": None,
        "created_at": created, "started_at": None, "updated_at": created, "finished_at": None, "error": None,
        "progress": 0.0, "subsets": list(subsets), "folds": {str(k): dict(fold) for k in range(folds)},
    }


def mark_running(run_dir: str | Path, *, device: str | None = None, **fields: Any) -> dict[str, Any]:
    """The session trains now: ``state: running`` (``started_at`` kept from an earlier session), no error."""
    update = {"state": "running", "message": None, "error": None, "finished_at": None, **fields}
    if device is not None:
        update["device"] = device
    if not read_status(run_dir).get("started_at"):
        update["started_at"] = now_iso()
    return update_status(run_dir, **update)


def mark_finished(run_dir: str | Path, state: str, *, error: str | None = None, **fields: Any) -> dict[str, Any] | None:
    """The one writer of a run's final state (``done``, ``failed``, ``cancelled``), ``finished_at`` and ``error``.

    A cancel also marks the fold that was training (``running``, or ``failed`` when the loop tripped over
    its DataLoader workers dying of the same SIGTERM) ``cancelled``. Returns the status, or None when the
    run directory is gone (nothing is written then: a deleted run stays deleted).
    """
    if state not in FINAL_STATES:
        raise ValueError(f"mark_finished takes a final state among {FINAL_STATES}, got {state!r}")
    run_dir = Path(run_dir)
    if not status_path(run_dir).is_file():
        log.warning("%s: the run directory is gone; not recording state %s", run_dir, state)
        return None
    if state == "cancelled":
        for key, fold in (read_status(run_dir).get("folds") or {}).items():
            if fold.get("state") in ("running", "failed") and not fold_is_complete(run_dir, int(key)):
                update_fold_status(run_dir, int(key), state="cancelled")
    log.info("%s: %s%s", run_dir.name, state, f" ({error})" if error else "")
    return update_status(run_dir, state=state, finished_at=now_iso(), error=error, message=None, **fields)
