"""The job process: what ``python -m engine run-job RUN_DIR`` runs (and ``train`` runs in the foreground).

One job trains one run. It records everything in the run directory through the store:

1. ``state: queued`` with its ``pid`` / ``pgid``, then a heartbeat (``updated_at`` every
   :data:`~engine.jobs.liveness.HEARTBEAT_S` seconds, from a thread) until it ends;
2. waits for its device (one exclusive lock per device, see :mod:`engine.jobs.devices`), saying
   ``message: "waiting for cpu ..."`` meanwhile;
3. ``state: running``, ``started_at``; trains the unfinished folds
   (:func:`engine.training.fit.train_run` writes the per-fold status);
4. ``state: done | cancelled | failed``, ``finished_at``, and for a failure ``error``: the last line
   of the traceback and what to do (the full traceback is in ``train.log``).

SIGTERM (what ``cancel`` sends to the job's whole process group) sets a flag that the training
loop reads at every batch boundary; the loop stops and the run is marked ``cancelled``.

A run asking for device ``cuda`` on a machine with several GPUs is trained by one *worker* process
per GPU (pinned with ``CUDA_VISIBLE_DEVICES``), started by this process, which then only keeps the
heartbeat and the final state. Workers take folds one at a time from a shared, lock-protected list
in the run directory (``.fold_queue.json``), so status and progress stay per fold and a faster GPU
takes more folds.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.io import atomic_write_json
from engine.jobs.devices import DeviceLock, acquire_any, device_lock, resolve_devices
from engine.jobs.liveness import HEARTBEAT_S, now_iso

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3
FOLD_QUEUE = ".fold_queue.json"
JOB_ENV = {"HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONUNBUFFERED": "1"}
FINAL_FOR_EXIT = {EXIT_DONE: "done", EXIT_CANCELLED: "cancelled"}


class StopFlag:
    """Set by SIGTERM (and SIGINT in the foreground); ``should_stop()`` for the training loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def set(self, reason: str = "cancel requested") -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()

    def install(self, *, sigint: bool = False) -> None:
        """Route SIGTERM (and SIGINT when ``sigint``) to this flag. Only from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        signals = [signal.SIGTERM] + ([signal.SIGINT] if sigint else [])
        self._owner = os.getpid()
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if os.getpid() != getattr(self, "_owner", os.getpid()):
            return  # a forked DataLoader worker: Ctrl-C reaches the whole group; the training process decides
        if signum == signal.SIGINT and self():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, not at the next batch
        self.set("interrupted (Ctrl-C)" if signum == signal.SIGINT else "cancel requested (SIGTERM)")
        if signum == signal.SIGINT:
            print("\nstopping at the next batch boundary (Ctrl-C again to stop at once)", file=sys.stderr)


class Heartbeat:
    """A daemon thread writing ``updated_at`` into the status of each run in ``run_dirs`` every ``period`` s."""

    def __init__(self, run_dirs: Sequence[Path], period: float = HEARTBEAT_S, *,
                 on_gone: Callable[[Path], None] | None = None) -> None:
        self.run_dirs = list(run_dirs)
        self.period = period
        self.on_gone = on_gone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fold-studio-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def beat(self) -> None:
        from engine.runs.store import update_status

        for run_dir in list(self.run_dirs):
            if not (Path(run_dir) / "status.json").is_file():
                # The run was deleted under us: writing would bring back a half status; stop instead.
                self.run_dirs.remove(run_dir)
                if self.on_gone is not None:
                    self.on_gone(Path(run_dir))
                continue
            try:
                update_status(run_dir, updated_at=now_iso())
            except Exception:  # a missed beat is not worth killing the job for
                log.debug("heartbeat for %s failed", run_dir, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- errors


def error_text(exc: BaseException, run_dir: Path) -> str:
    """The message stored in ``status.error``: the traceback's last line plus what to do about it."""
    from engine.errors import EngineError

    if isinstance(exc, EngineError):
        head = str(exc)
    else:
        head = traceback.format_exception_only(type(exc), exc)[-1].strip()
    text = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = (f"the disk is full: free disk space where the run directory lies ({run_dir.parent}), then resume the "
                "run (finished folds are kept)")
    elif "out of memory" in text:
        hint = "the batch does not fit in memory: lower train.batch_size (or image_size), then resume the run"
    elif isinstance(exc, (FileNotFoundError, PermissionError)):
        hint = "a file the run needs cannot be read: check the dataset and weights paths, then resume the run"
    else:
        hint = f"the full traceback is in {run_dir / 'train.log'}; fix the cause, then resume the run"
    return f"{head} — {hint}"


# ---------------------------------------------------------------- the fold queue (several devices)


def run_folds(run_dir: Path) -> list[int]:
    """The fold numbers of a run (from its split), in order."""
    import pandas as pd

    folds = pd.read_parquet(Path(run_dir) / "split.parquet", columns=["fold"])["fold"]
    return sorted(int(f) for f in folds.unique() if f >= 0)


def unfinished_folds(run_dir: Path, folds: Sequence[int] | None = None) -> list[int]:
    from engine.runs.store import fold_is_complete

    return [f for f in (run_folds(run_dir) if folds is None else folds) if not fold_is_complete(run_dir, f)]


@contextmanager
def _queue_locked(run_dir: Path) -> Iterator[Path]:
    with open(Path(run_dir) / ".fold_queue.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield Path(run_dir) / FOLD_QUEUE
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_fold_queue(run_dir: Path, folds: Sequence[int]) -> None:
    with _queue_locked(run_dir) as path:
        atomic_write_json(path, {"pending": [int(f) for f in folds], "claimed": {}})


def claim_next_fold(run_dir: Path, device: str) -> int | None:
    """Take the next pending fold for ``device`` (None when the list is empty). Safe across processes."""
    with _queue_locked(run_dir) as path:
        try:
            queue = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if not queue["pending"]:
            return None
        fold = int(queue["pending"].pop(0))
        queue["claimed"][str(fold)] = device
        atomic_write_json(path, queue)
        return fold


def clear_fold_queue(run_dir: Path) -> None:
    with _queue_locked(run_dir) as path:
        path.unlink(missing_ok=True)


def _mark_unfinished_folds(run_dir: Path, state: str) -> None:
    """After a cancel: the fold that was training says ``cancelled``, even when the loop first tripped
    over its DataLoader workers dying of the same SIGTERM (and so wrote ``failed``)."""
    from engine.runs.store import fold_is_complete, read_status, update_fold_status

    for key, fold in (read_status(run_dir).get("folds") or {}).items():
        if fold.get("state") in ("running", "failed") and not fold_is_complete(run_dir, int(key)):
            update_fold_status(run_dir, int(key), state=state)


def reconcile_folds(run_dir: Path) -> None:
    """Make the per-fold states match the files before training again: a fold whose files are all
    there is ``done`` (a job killed between its last file and its status update left it
    ``running``); an unfinished fold left ``running`` / ``failed`` / ``cancelled`` is ``queued`` again."""
    from engine.runs.store import fold_is_complete, read_status, update_fold_status

    for key, fold in (read_status(run_dir).get("folds") or {}).items():
        complete = fold_is_complete(run_dir, int(key))
        if complete and fold.get("state") != "done":
            update_fold_status(run_dir, int(key), state="done", phase="done")
        elif not complete and fold.get("state") in ("running", "failed", "cancelled"):
            update_fold_status(run_dir, int(key), state="queued", error=None)


# ---------------------------------------------------------------- the job


def _train(run_dir: Path, *, folds, device: str, progress, should_stop) -> None:
    from engine.training.fit import train_run

    train_run(run_dir, folds=folds, device=device, progress=progress, should_stop=should_stop)


def _finish(run_dir: Path, state: str, error: str | None = None, **fields) -> None:
    from engine.runs.store import update_status

    if not (run_dir / "status.json").is_file():
        log.warning("%s: the run directory is gone; not recording state %s", run_dir, state)
        return
    if state == "cancelled":
        _mark_unfinished_folds(run_dir, "cancelled")
    log.info("%s: %s%s", run_dir.name, state, f" ({error})" if error else "")
    update_status(run_dir, state=state, finished_at=now_iso(), updated_at=now_iso(), error=error, message=None,
                  **fields)


def _outcome(exc: BaseException | None, stop: StopFlag, run_dir: Path) -> tuple[str, str | None]:
    """(final state, error) for how training ended. An error after a cancel request is the cancel
    itself (SIGTERM also killed the DataLoader workers, which the loop may notice first)."""
    from engine.training.fit import Cancelled

    if exc is None:
        return "done", None
    if isinstance(exc, Cancelled) or stop():
        return "cancelled", None
    time.sleep(0.2)  # SIGTERM reaches the whole group at once; give our own handler its turn
    if stop():
        return "cancelled", None
    return "failed", error_text(exc, run_dir)


def run_job(run_dir: str | os.PathLike, *, folds: Sequence[int] | None = None, devices: Sequence[str] | None = None,
            progress: Callable[[dict], None] | None = None, foreground: bool = False,
            stop: StopFlag | None = None) -> str:
    """Train ``run_dir`` (its unfinished folds among ``folds``) in this process; return the final state.

    ``devices`` overrides the run's ``device`` field with an explicit list (more than one entry: one
    worker process per entry, folds shared between them). ``foreground`` also routes SIGINT to the
    cancel flag (Ctrl-C stops at the next batch boundary).
    """
    from engine.runs.store import read_config, update_status

    run_dir = Path(run_dir).absolute()
    stop = stop or StopFlag()
    stop.install(sigint=foreground)
    update_status(run_dir, state="queued", pid=os.getpid(), pgid=os.getpgrp(), updated_at=now_iso(),
                  started_at=None, finished_at=None, error=None, message="starting")
    try:
        with Heartbeat([run_dir], on_gone=lambda d: stop.set(f"run directory {d} was deleted")):
            try:
                reconcile_folds(run_dir)
                requested = read_config(run_dir).device
                spread = list(devices) if devices else (resolve_devices(requested) if requested == "cuda" else None)
                if spread and len(spread) > 1:
                    return _run_spread(run_dir, folds=folds, devices=spread, stop=stop, progress=progress)
                candidates = list(devices) if devices else resolve_devices(requested)
                return _run_single(run_dir, folds=folds, candidates=candidates, stop=stop, progress=progress)
            except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised for KeyboardInterrupt / SystemExit
                state, error = _outcome(exc, stop, run_dir) if isinstance(exc, Exception) else ("cancelled", None)
                if state != "cancelled":
                    log.exception("%s: training failed", run_dir.name)
                _finish(run_dir, state, error)
                if not isinstance(exc, Exception):
                    raise
                return state
    finally:
        stop.restore()


def _announce_running(run_dir: Path, device: str | None) -> None:
    from engine.runs.store import read_status, update_status

    fields = {"state": "running", "message": None, "updated_at": now_iso()}
    if device is not None:
        fields["device"] = device
    if not read_status(run_dir).get("started_at"):
        fields["started_at"] = now_iso()
    update_status(run_dir, **fields)


def _wait_message(run_dir: Path):
    from engine.runs.store import update_status

    def on_wait(message: str) -> None:
        log.info("%s: %s", run_dir.name, message)
        update_status(run_dir, message=message, updated_at=now_iso())

    return on_wait


def _run_single(run_dir: Path, *, folds, candidates: Sequence[str], stop: StopFlag, progress) -> str:
    locks = [device_lock(run_dir, d) for d in candidates]
    held = acquire_any(locks, holder=f"run {run_dir.name} (pid {os.getpid()})", on_wait=_wait_message(run_dir),
                       should_stop=stop)
    if held is None:
        _finish(run_dir, "cancelled")
        return "cancelled"
    with held:
        _announce_running(run_dir, held.device)
        log.info("%s: training on %s", run_dir.name, held.device)
        _train(run_dir, folds=folds, device=held.device, progress=progress, should_stop=stop)
        state, error = _outcome(None, stop, run_dir)
        _finish(run_dir, state, error)
        return state


def _worker_command(run_dir: Path, device: str, lock: DeviceLock) -> tuple[list[str], dict]:
    env = {**os.environ, **JOB_ENV}
    local = device
    if device.startswith("cuda:"):
        from engine.jobs.devices import physical_gpu_id

        env["CUDA_VISIBLE_DEVICES"] = physical_gpu_id(device)
        local = "cuda:0"
    cmd = [sys.executable, "-m", "engine", "run-job", str(run_dir), "--worker", "--device", local,
           "--device-name", device, "--lock-file", str(lock.path)]
    return cmd, env


def _run_spread(run_dir: Path, *, folds, devices: Sequence[str], stop: StopFlag, progress) -> str:
    """Coordinator: one worker process per device, folds taken from a shared list; final state from their exits."""
    from engine.runs.store import read_status, update_status

    pending = unfinished_folds(run_dir, folds)
    if not pending:
        _finish(run_dir, "done")
        return "done"
    write_fold_queue(run_dir, pending)
    # The same device named twice (a test spreading over two CPU processes) gets one lock per slot.
    names = [d if devices.count(d) == 1 else f"{d}#{i}" for i, d in enumerate(devices)]
    workers = []
    for device, name in zip(devices, names, strict=True):
        cmd, env = _worker_command(run_dir, device, device_lock(run_dir, name))
        workers.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))  # same process group, same log
    update_status(run_dir, message=f"{len(pending)} fold(s) over {', '.join(devices)}", devices=list(devices),
                  updated_at=now_iso())
    forwarded = False
    while any(w.poll() is None for w in workers):
        if stop() and not forwarded:  # signal sent to us alone (not the group): pass it on
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            forwarded = True
        if progress is not None:
            progress({"event": "poll"})
        time.sleep(0.5)
    codes = [w.returncode for w in workers]
    clear_fold_queue(run_dir)
    if stop() or EXIT_CANCELLED in codes:
        state, error = "cancelled", None
    elif any(c not in (EXIT_DONE, EXIT_CANCELLED) for c in codes):
        folds_now = read_status(run_dir).get("folds") or {}
        errors = [f"fold {k} on {f.get('device')}: {f['error']}" for k, f in folds_now.items()
                  if f.get("state") == "failed" and f.get("error")]
        state, error = "failed", "; ".join(errors) or f"a worker process failed (exit codes {codes}); see train.log"
    else:
        left = unfinished_folds(run_dir, folds)
        state, error = ("done", None) if not left else ("failed", f"folds {left} were not trained; resume the run")
    _finish(run_dir, state, error, device=",".join(devices))
    return state


def run_worker(run_dir: str | os.PathLike, *, device: str, device_name: str, lock_file: str) -> int:
    """One worker of a spread run: hold ``lock_file``, train claimed folds one at a time on ``device``."""
    from engine.runs.store import update_fold_status

    run_dir = Path(run_dir).absolute()
    stop = StopFlag()
    stop.install()
    lock = DeviceLock(device_name, Path(lock_file))
    held = acquire_any([lock], holder=f"run {run_dir.name} (pid {os.getpid()})", should_stop=stop)
    if held is None:
        return EXIT_CANCELLED
    with held:
        while not stop():
            fold = claim_next_fold(run_dir, device_name)
            if fold is None:
                return EXIT_DONE
            _announce_running(run_dir, None)
            update_fold_status(run_dir, fold, device=device_name, pid=os.getpid())
            try:
                _train(run_dir, folds=[fold], device=device, progress=None, should_stop=stop)
            except Exception as exc:
                state, error = _outcome(exc, stop, run_dir)
                if state == "cancelled":
                    return EXIT_CANCELLED
                log.exception("fold %s on %s failed", fold, device_name)
                # Per fold: another worker's train_run clears the run-level error when it starts its next fold.
                update_fold_status(run_dir, fold, state="failed", error=error)
                return EXIT_FAILED
    return EXIT_CANCELLED
