"""What runs on the Ray cluster: one driver actor per run, one task per fold.

:class:`RunDriver` is a detached actor (it outlives the studio or command that submitted it). It owns
the run's fold tasks, keeps the run's heartbeat in ``status.json`` (``updated_at`` every
:data:`~engine.jobs.liveness.HEARTBEAT_S` seconds), and records the final state once every fold task
has ended: ``done``, ``cancelled``, or ``failed`` with each failed fold's error (a Ray error such as
``WorkerCrashedError`` once the fold's retries are spent), through :func:`engine.runs.mark_finished`:
the driver is the one writer of the run's final state, as a local job is. Then the actor exits.

:func:`train_fold` is the fold task: ``engine.training.fit.train_folds(run_dir, folds=[fold])`` on the
node Ray picked, writing the fold's status, metrics, predictions and weights into the run directory
exactly as a local job does (the directory must be on storage every node sees). Ray runs it again,
from the start of the fold, when its worker process or node dies (``max_retries``).

Cancelling writes the run's cancel request (:func:`engine.runs.layout.cancel_request_path`,
:class:`CancelMarker`): each fold task reads it at every batch boundary (at most every half second)
and stops there; folds still waiting for a slot are dropped with ``ray.cancel``, and a fold that has
not stopped by the deadline is killed (``ray.cancel(force=True)``).

This module imports ``ray``: only the Ray launcher and the cluster's workers load it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from engine.jobs.runner import Heartbeat, logging_to_run, reconcile_folds, unfinished_folds
from engine.runs import layout, mark_finished, mark_running, now_iso, read_status, update_fold_status, update_status
from engine.training.outcome import error_text

log = logging.getLogger(__name__)

WAIT_S = 1.0  # how often the driver looks at its fold tasks (and at a cancel's deadline)


class CancelMarker:
    """The run's cancel request, a file every fold task of the run can see. Calling it answers "stop now?"
    (the file is looked at no more than every ``every_s`` seconds)."""

    def __init__(self, run_dir: str | os.PathLike, every_s: float = 0.5) -> None:
        self.path = layout.cancel_request_path(run_dir)
        self.every_s = every_s
        self._seen = False
        self._checked = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._seen and now - self._checked >= self.every_s:
            self._checked = now
            self._seen = self.path.exists()
        return self._seen

    def set(self) -> None:
        self.path.write_text(now_iso() + "\n", encoding="utf-8")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _where(device: str) -> str:
    """``"<node ip>/cuda:<physical id>"`` or ``"<node ip>/cpu"``: the fold's device as the monitor shows it."""
    node = ray.util.get_node_ip_address()
    gpus = ray.get_gpu_ids() if device.startswith("cuda") else []
    return f"{node}/cuda:{gpus[0]}" if gpus else f"{node}/{device}"


def train_fold(run_dir: str, fold: int, device: str) -> dict[str, Any]:
    """The fold task: train fold ``fold`` of ``run_dir`` on ``device`` (``cpu``, or ``cuda`` = the GPU Ray
    assigned). Returns ``{"state": "done" | "cancelled" | "failed", "error": ...}``; an error of the
    training itself is returned (and written to the fold's status), not raised, so Ray does not retry it."""
    from engine.runs import fold_is_complete
    from engine.training.fit import Cancelled, train_folds

    path = Path(run_dir)
    stop = CancelMarker(path)
    with logging_to_run(path):
        attempt = int(((read_status(path).get("folds") or {}).get(str(fold)) or {}).get("attempt") or 0) + 1
        where = _where(device)
        mark_running(path, device=device)  # the run trains once a fold does (its final state is the driver's)
        update_fold_status(path, fold, attempt=attempt, pid=os.getpid(), device=where)
        log.info("%s: fold %d on %s (attempt %d, pid %d)", path.name, fold, where, attempt, os.getpid())
        try:
            train_folds(path, folds=[fold], device=device, should_stop=stop)
        except SystemExit:  # Ray stops a worker with SIGTERM: the run's driver (this task's owner) died, or the node
            if not stop.path.exists():  # (not a cancel that ran out of time: the driver records that one)
                error = (f"the Ray worker training fold {fold} was stopped (SIGTERM) before the fold ended: the "
                         f"run's driver is gone or its node is shutting down; resume the run")
                log.error("%s: %s", path.name, error)
                update_fold_status(path, fold, state="failed", error=error)
            raise
        except Exception as exc:
            if isinstance(exc, Cancelled) or stop():  # any error after a cancel request is the cancel itself
                log.info("%s: fold %d cancelled", path.name, fold)
                return {"state": "cancelled", "error": None}
            log.exception("%s: fold %d failed", path.name, fold)
            error = error_text(exc, path)
            update_fold_status(path, fold, state="failed", error=error)
            return {"state": "failed", "error": error}
    if not fold_is_complete(path, fold):
        return {"state": "failed", "error": f"fold {fold} ended without its weights and predictions"}
    return {"state": "done", "error": None}


def ray_error_text(exc: BaseException, fold: int, retries: int) -> str:
    """The fold's error for a failure of Ray itself (its worker process or node died, after ``retries`` retries)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    tried = f" (and on each of its {retries} retries)" if retries else ""
    return (f"Ray: {type(exc).__name__}: {first} — the process training fold {fold} died{tried}; "
            f"check the node's memory and logs, then resume the run")


class RunDriver:
    """The detached driver of one run on the cluster (wrapped with ``ray.remote`` by the launcher).

    ``spec``: ``num_cpus``, ``num_gpus``, ``device`` and ``max_retries`` of each fold task. Creating the
    actor starts the run (in a thread); once the final state is recorded the actor ends itself.
    ``cancel()`` may be called meanwhile (the actor is threaded).
    """

    def __init__(self, run_dir: str, folds: Sequence[int] | None, spec: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.folds = None if folds is None else [int(f) for f in folds]
        self.spec = dict(spec)
        self._refs: dict[Any, int] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._deadline: float | None = None
        self._finished = threading.Event()
        self._state: str | None = None
        # The work starts here, not in a method call: a detached actor's creation reaches the cluster even
        # when the submitting process exits at once, a method call sent after it might not.
        threading.Thread(target=self._main, name="fold-studio-run-driver", daemon=True).start()

    # -------------------------------------------------------------- called by the launcher

    def cancel(self, timeout: float) -> str | None:
        """Stop the run: drop folds waiting for a slot, stop running ones at their next batch, kill any
        that has not stopped after ``timeout`` seconds. Returns the final state once recorded."""
        CancelMarker(self.run_dir).set()
        self._deadline = time.monotonic() + float(timeout)
        self._cancel.set()
        with self._lock:
            refs = list(self._refs)
        for ref in refs:
            ray.cancel(ref)  # not forced: a fold not started yet is dropped; a running one reads the marker
        self._finished.wait(float(timeout) + 30.0)
        return self._state

    # -------------------------------------------------------------- the run

    def _main(self) -> None:
        try:
            with logging_to_run(self.run_dir):
                try:
                    self._state = self._run()
                except Exception as exc:  # a bug or a lost cluster: the run must not stay 'running'
                    log.exception("%s: the Ray driver failed", self.run_dir.name)
                    self._state = "failed"
                    mark_finished(self.run_dir, "failed", error=error_text(exc, self.run_dir))
        finally:
            self._finished.set()
            time.sleep(0.5)  # a cancel() waiting on us gets its answer before the actor goes
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def _run(self) -> str:
        run_dir = self.run_dir
        with Heartbeat([run_dir], on_gone=lambda d: self._cancel.set()):
            reconcile_folds(run_dir)
            pending = unfinished_folds(run_dir, self.folds)
            if self._cancel.is_set():
                mark_finished(run_dir, "cancelled")
                return "cancelled"
            if not pending:
                mark_finished(run_dir, "done")
                return "done"
            task = ray.remote(train_fold)
            options = {"num_cpus": self.spec["num_cpus"], "num_gpus": self.spec["num_gpus"],
                       "max_retries": self.spec["max_retries"], "retry_exceptions": False,
                       # a GPU worker process ends with its fold, so its CUDA memory goes with it
                       **({"max_calls": 1} if self.spec["num_gpus"] else {})}
            for fold in pending:
                update_fold_status(run_dir, fold, attempt=0, error=None)
                ref = task.options(name=f"{run_dir.name} fold {fold}", **options).remote(
                    str(run_dir), fold, self.spec["device"])
                with self._lock:
                    self._refs[ref] = fold
            log.info("%s: %d fold(s) sent to Ray (%s each)", run_dir.name, len(pending), self._asks())
            outcomes = self._wait_for_folds()
            state, error = self._final_state(outcomes)
            mark_finished(run_dir, state, error=error, **({"progress": 1.0} if state == "done" else {}))
            return state

    def _asks(self) -> str:
        gpus = self.spec["num_gpus"]
        return f"{self.spec['num_cpus']} CPU" + (f" + {gpus} GPU" if gpus else "")

    def _wait_for_folds(self) -> dict[int, dict[str, Any]]:
        outcomes: dict[int, dict[str, Any]] = {}
        while True:
            with self._lock:
                refs = list(self._refs)
            if not refs:
                return outcomes
            ready, _ = ray.wait(refs, num_returns=1, timeout=WAIT_S)
            for ref in ready:
                with self._lock:
                    fold = self._refs.pop(ref)
                outcomes[fold] = self._outcome(ref, fold)
            if self._cancel.is_set() and self._deadline is not None and time.monotonic() > self._deadline:
                with self._lock:
                    late = list(self._refs)
                for ref in late:
                    ray.cancel(ref, force=True)
                self._deadline = None
            self._report(outcomes)

    def _outcome(self, ref, fold: int) -> dict[str, Any]:
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return {"state": "cancelled", "error": None}
        except ray.exceptions.RayError as exc:
            if self._cancel.is_set():
                return {"state": "cancelled", "error": None}
            error = ray_error_text(exc, fold, self.spec["max_retries"])
            log.error("%s: fold %d: %s", self.run_dir.name, fold, error)
            update_fold_status(self.run_dir, fold, state="failed", error=error)
            return {"state": "failed", "error": error}

    def _report(self, outcomes: dict[int, dict[str, Any]]) -> None:
        """``message``: how many folds train and how many wait for a slot on the cluster (written when it
        changes, or when a fold starting cleared it)."""
        status = read_status(self.run_dir)
        if self._cancel.is_set():
            message = "cancelling"
        else:
            with self._lock:
                left = set(self._refs.values())
            folds = status.get("folds") or {}
            training = sum(1 for k, f in folds.items() if int(k) in left and f.get("state") == "running")
            waiting = len(left) - training
            message = f"{training} fold(s) training on Ray" + (
                f", {waiting} waiting to start ({self._asks()} each)" if waiting else "")
            failed = [k for k, o in outcomes.items() if o["state"] == "failed"]
            if failed:
                message += f"; fold(s) {sorted(failed)} failed"
        if message != status.get("message"):
            update_status(self.run_dir, message=message)

    def _final_state(self, outcomes: dict[int, dict[str, Any]]) -> tuple[str, str | None]:
        if self._cancel.is_set() or any(o["state"] == "cancelled" for o in outcomes.values()):
            return "cancelled", None
        failed = {k: o.get("error") for k, o in outcomes.items() if o["state"] == "failed"}
        if failed:
            return "failed", "; ".join(f"fold {k}: {e}" for k, e in sorted(failed.items()))
        left = unfinished_folds(self.run_dir, self.folds)
        if left:
            return "failed", f"folds {left} were not trained; resume the run"
        return "done", None
