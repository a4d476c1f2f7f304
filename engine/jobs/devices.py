"""Devices for training jobs: which exist, what a run's ``device`` field resolves to, and one queue per device.

A run's ``device`` is ``auto``, ``cpu``, ``cuda:N`` or ``cuda`` (every visible GPU):

- ``cpu`` and ``cuda:N`` name one device;
- ``auto`` is the first free GPU (``cuda:0`` on a one-GPU machine), or ``cpu`` without one;
- ``cuda`` spreads the run's folds over every visible GPU, one process per GPU
  (:func:`plan_fold_assignment` shows the split; the processes take folds from a shared list, so a
  faster GPU simply takes more).

Two jobs never train on the same device at once: each holds an exclusive ``fcntl`` lock on
``<workspace>/locks/<device>.lock`` while it trains, and a second job waits (state ``queued``,
``message: "waiting for cuda:0 ..."``) until the first lets go. The kernel drops the lock when the
holder dies, so a crashed job never blocks the queue.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RunError
from engine.training.config import check_device_name as validate_device

__all__ = ["DeviceLock", "acquire_any", "cuda_device_count", "device_lock", "list_devices", "locks_dir",
           "physical_gpu_id", "plan_fold_assignment", "resolve_devices", "validate_device"]

_CUDA_N = re.compile(r"^cuda:(\d+)$")


def cuda_device_count() -> int:
    """Number of CUDA GPUs this process can see (0 without torch's CUDA build or without a GPU)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency; kept for a light CLI
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver must not crash status commands
        return 0


def list_devices() -> list[str]:
    """Devices a job may ask for here: ``["cpu"]`` plus ``cuda:0 ... cuda:{N-1}``."""
    return ["cpu"] + [f"cuda:{i}" for i in range(cuda_device_count())]


def resolve_devices(device: str, *, gpu_count: int | None = None) -> list[str]:
    """The devices a run asking for ``device`` may train on, in order of preference.

    ``auto`` -> every GPU (the job takes the first free one) or ``["cpu"]``; ``cuda`` -> every GPU
    (the job uses them all at once); ``cpu`` / ``cuda:N`` -> that device. Raises :class:`RunError`
    when a GPU is asked for and none (or not that one) is visible.
    """
    name = validate_device(device)
    n = cuda_device_count() if gpu_count is None else gpu_count
    gpus = [f"cuda:{i}" for i in range(n)]
    if name == "cpu":
        return ["cpu"]
    if name == "auto":
        return gpus or ["cpu"]
    if name == "cuda":
        if not gpus:
            raise RunError("The run asks for device 'cuda' (every GPU) but no CUDA GPU is visible here; "
                           "set device to 'auto' or 'cpu'.")
        return gpus
    index = int(_CUDA_N.match(name).group(1))
    if index >= n:
        raise RunError(f"The run asks for device {name!r} but only {n} CUDA GPU(s) are visible here "
                       f"({', '.join(gpus) or 'none'}); set device to 'auto', 'cpu' or one of those.")
    return [name]


def plan_fold_assignment(folds: Sequence[int], devices: Sequence[str]) -> dict[str, list[int]]:
    """Spread ``folds`` over ``devices`` round-robin, in order: the plan when every fold takes as long.

    At run time each device's process takes the next fold from a shared list instead, so the real
    split also balances folds that take longer; this plan is what the status shows before training
    and what a test can check. Devices beyond the number of folds get an empty list.

    >>> plan_fold_assignment([0, 1, 2, 3, 4], ["cuda:0", "cuda:1"])
    {'cuda:0': [0, 2, 4], 'cuda:1': [1, 3]}
    """
    if not devices:
        raise ValueError("plan_fold_assignment needs at least one device")
    if len(set(devices)) != len(devices):
        raise ValueError(f"plan_fold_assignment got a device twice: {list(devices)}")
    plan: dict[str, list[int]] = {d: [] for d in devices}
    for i, fold in enumerate(folds):
        plan[devices[i % len(devices)]].append(int(fold))
    return plan


def physical_gpu_id(device: str) -> str:
    """The id to put in ``CUDA_VISIBLE_DEVICES`` for ``cuda:N``, honouring a ``CUDA_VISIBLE_DEVICES`` already set."""
    index = int(_CUDA_N.match(device).group(1))
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[index] if index < len(visible) else str(index)


def locks_dir(run_dir: str | os.PathLike) -> Path:
    """``<workspace>/locks`` for a run directory ``<workspace>/runs/<run_id>`` (else the default workspace's)."""
    from engine.runs import workspace_of
    from engine.workspace import resolve_workspace

    path = (workspace_of(run_dir) or resolve_workspace()) / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock_file_name(device: str) -> str:
    if device.startswith("cuda:"):  # lock the physical GPU, whatever this process's CUDA_VISIBLE_DEVICES says
        return f"cuda-{physical_gpu_id(device)}.lock"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", device) + ".lock"


@dataclass
class DeviceLock:
    """An exclusive hold on one device; released by :meth:`release` or when the process ends."""

    device: str
    path: Path
    fd: int | None = None

    def try_acquire(self, holder: str) -> bool:
        if self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}\n".encode(), 0)
        self.fd = fd
        return True

    def holder(self) -> str | None:
        """Who holds the device (as written by the holder), or None when unknown."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return text or None

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DeviceLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def device_lock(run_dir: str | os.PathLike, device: str) -> DeviceLock:
    """The (not yet acquired) lock of ``device`` in the workspace of ``run_dir``."""
    return DeviceLock(device, locks_dir(run_dir) / _lock_file_name(device))


def acquire_any(locks: Sequence[DeviceLock], holder: str, *, on_wait: Callable[[str], None] | None = None,
                should_stop: Callable[[], bool] | None = None, poll_s: float = 0.5) -> DeviceLock | None:
    """Take the first of ``locks`` that is free, waiting while all are held.

    ``on_wait(message)`` is called once when the job starts waiting (and again if the holder changes);
    ``should_stop()`` is polled while waiting and returns None (nothing held) once it is true.
    """
    told = None
    while True:
        for lock in locks:
            if lock.try_acquire(holder):
                return lock
        if should_stop is not None and should_stop():
            return None
        holders = [h for h in (lock.holder() for lock in locks) if h]
        names = " or ".join(lock.device for lock in locks)
        message = f"waiting for {names}" + (f" (in use by {', '.join(holders)})" if holders else "")
        if message != told and on_wait is not None:
            on_wait(message)
        told = message
        time.sleep(poll_s)
