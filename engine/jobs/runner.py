"""The job process: what ``python -m engine run-job RUN_DIR`` runs (and ``train`` runs in the foreground).

One job trains one run. It records everything in the run directory through the store:

1. ``state: queued`` with its ``pid`` / ``pgid`` / ``pid_started``, then a heartbeat (``updated_at``
   every :data:`~engine.runs.liveness.HEARTBEAT_S` seconds, from a thread) until it ends;
2. waits for its device (one exclusive lock per device, see :mod:`engine.jobs.devices`), saying
   ``message: "waiting for cpu ..."`` meanwhile;
3. ``state: running``, ``started_at``; trains the unfinished folds
   (:func:`engine.training.fit.train_folds` writes the per-fold status, nothing run-level);
4. ``state: done | cancelled | failed``, ``finished_at``, and for a failure ``error``: the last line
   of the traceback and what to do (the full traceback is in the run's log).

The job owns the run-level state of its session: it is written here, once, through
:func:`engine.runs.mark_running` and :func:`engine.runs.mark_finished` (:func:`_finish`).

SIGTERM (what ``cancel`` sends to the job's whole process group) sets a flag that the training
loop reads at every batch boundary; the loop stops and the run is marked ``cancelled``.

A run asking for device ``cuda`` on a machine with several GPUs is trained by one *worker* process
per GPU (pinned with ``CUDA_VISIBLE_DEVICES``), started by this process, which then only keeps the
heartbeat and the final state. Workers take folds one at a time from a shared, lock-protected list
in the run directory (:func:`engine.runs.layout.fold_queue_path`), so status and progress stay per
fold and a faster GPU takes more folds.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import engine
from engine.io import atomic_write_json
from engine.jobs.devices import DeviceLock, acquire_any, device_lock, resolve_devices
from engine.offline import job_env
from engine.runs import layout
from engine.runs.liveness import HEARTBEAT_S, job_process_fields
from engine.training.outcome import error_text

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3
FINAL_FOR_EXIT = {EXIT_DONE: "done", EXIT_CANCELLED: "cancelled"}


def job_environment(run_dir: str | os.PathLike | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a job process: the caller's (``base``, default ``os.environ``) under the engine's
    network policy (:func:`engine.offline.job_env`: ``HF_HUB_OFFLINE=0`` only for a run whose config allows
    downloads, and never when the user set ``HF_HUB_OFFLINE=1``), unbuffered output, this very engine on
    ``PYTHONPATH`` (whatever the caller's working directory) and the run's workspace."""
    env = job_env(allow_download=_allows_download(run_dir), environ=os.environ if base is None else base)
    root = str(Path(engine.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]))
    workspace = layout.workspace_of(run_dir) if run_dir is not None else None
    if workspace is not None:
        env["FOLD_STUDIO_WORKSPACE"] = str(workspace)
    return env


def _allows_download(run_dir: str | os.PathLike | None) -> bool:
    """``model.allow_download`` of the run's stored config (False without a run or a readable config)."""
    if run_dir is None:
        return False
    from engine.errors import RunError
    from engine.runs.store import read_config

    try:
        model = read_config(run_dir).get("model") or {}
    except RunError:
        return False
    return bool(isinstance(model, dict) and model.get("allow_download"))


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
        from engine.runs import update_status

        for run_dir in list(self.run_dirs):
            if not layout.status_path(run_dir).is_file():
                # The run was deleted under us: writing would bring back a half status; stop instead.
                self.run_dirs.remove(run_dir)
                if self.on_gone is not None:
                    self.on_gone(Path(run_dir))
                continue
            try:
                update_status(run_dir)  # stamps updated_at
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


@contextmanager
def logging_to_run(run_dir: str | os.PathLike) -> Iterator[None]:
    """The engine's log records (INFO and up) also go to the run's log for the block, as a detached job's do."""
    handler = logging.FileHandler(layout.log_path(run_dir), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    engine_log = logging.getLogger("engine")
    level = engine_log.level
    if engine_log.getEffectiveLevel() > logging.INFO:
        engine_log.setLevel(logging.INFO)
    engine_log.addHandler(handler)
    try:
        yield
    finally:
        engine_log.removeHandler(handler)
        engine_log.setLevel(level)
        handler.close()


# ---------------------------------------------------------------- the fold queue (several devices)


def run_folds(run_dir: Path) -> list[int]:
    """The fold numbers of a run (from its split), in order."""
    from engine.runs import read_split

    folds = read_split(run_dir)["fold"]
    return sorted(int(f) for f in folds.unique() if f >= 0)


def unfinished_folds(run_dir: Path, folds: Sequence[int] | None = None) -> list[int]:
    from engine.runs import fold_is_complete

    return [f for f in (run_folds(run_dir) if folds is None else folds) if not fold_is_complete(run_dir, f)]


@contextmanager
def _queue_locked(run_dir: Path) -> Iterator[Path]:
    with open(layout.fold_queue_lock_path(run_dir), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield layout.fold_queue_path(run_dir)
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


def reconcile_folds(run_dir: Path) -> None:
    """Make the per-fold states match the files before training again: a fold whose files are all
    there is ``done`` (a job killed between its last file and its status update left it
    ``running``); an unfinished fold left ``running`` / ``failed`` / ``cancelled`` is ``queued`` again."""
    from engine.runs import fold_is_complete, read_status, update_fold_status

    for key, fold in (read_status(run_dir).get("folds") or {}).items():
        complete = fold_is_complete(run_dir, int(key))
        if complete and fold.get("state") != "done":
            update_fold_status(run_dir, int(key), state="done", phase="done")
        elif not complete and fold.get("state") in ("running", "failed", "cancelled"):
            update_fold_status(run_dir, int(key), state="queued", error=None)


# ---------------------------------------------------------------- the job


def _train(run_dir: Path, *, folds, device: str, progress, should_stop) -> None:
    from engine.training.fit import train_folds

    train_folds(run_dir, folds=folds, device=device, progress=progress, should_stop=should_stop)


def _finish(run_dir: Path, state: str, error: str | None = None, **fields) -> None:
    """Record how the job's session ended (the run-level final state; see the module docstring)."""
    from engine.runs import mark_finished

    mark_finished(run_dir, state, error=error, **fields)


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
    from engine.runs import update_status
    from engine.training.config import read_run_config

    run_dir = Path(run_dir).absolute()
    stop = stop or StopFlag()
    stop.install(sigint=foreground)
    update_status(run_dir, state="queued", **job_process_fields(os.getpid(), os.getpgrp()), started_at=None,
                  finished_at=None, error=None, message="starting")
    try:
        with Heartbeat([run_dir], on_gone=lambda d: stop.set(f"run directory {d} was deleted")):
            try:
                reconcile_folds(run_dir)
                requested = read_run_config(run_dir).device
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
    from engine.runs import mark_running

    mark_running(run_dir, device=device)


def _wait_message(run_dir: Path):
    from engine.runs import update_status

    def on_wait(message: str) -> None:
        log.info("%s: %s", run_dir.name, message)
        update_status(run_dir, message=message)

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
    env = job_environment(run_dir)
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
    from engine.runs import read_status, update_status

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
    update_status(run_dir, message=f"{len(pending)} fold(s) over {', '.join(devices)}", devices=list(devices))
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
        state, error = "failed", "; ".join(errors) or (f"a worker process failed (exit codes {codes}); "
                                                        f"see {layout.log_path(run_dir)}")
    else:
        left = unfinished_folds(run_dir, folds)
        state, error = ("done", None) if not left else ("failed", f"folds {left} were not trained; resume the run")
    _finish(run_dir, state, error, device=",".join(devices))
    return state


def run_worker(run_dir: str | os.PathLike, *, device: str, device_name: str, lock_file: str) -> int:
    """One worker of a spread run: hold ``lock_file``, train claimed folds one at a time on ``device``."""
    from engine.runs import update_fold_status

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
                # Per fold: the coordinator (_run_spread) writes the run's final state from every worker's outcome.
                update_fold_status(run_dir, fold, state="failed", error=error)
                return EXIT_FAILED
    return EXIT_CANCELLED
