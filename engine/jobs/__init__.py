"""Background training jobs: launch, status, cancel, resume — the run directory is the job's record.

Public face::

    from engine.jobs import launch_training, create_launcher, effective_status

    run_dirs = launch_training("configs/demo.yaml", overrides=["train.epochs=1"])   # detached
    effective_status(run_dirs[0])["state"]            # queued / running / done / failed / cancelled
    create_launcher().cancel(run_dirs[0])             # stops at the next batch boundary
    create_launcher().resume(run_dirs[0])             # from the first unfinished fold

See :mod:`engine.jobs.launcher` (the interface and the local backend), :mod:`engine.jobs.foreground`
(the same jobs in the calling process: the command line without ``--detach``), :mod:`engine.jobs.runner`
(the job process; it owns the run-level state of its session) and :mod:`engine.jobs.devices` (device
queue, several GPUs). Liveness (a dead job shows as failed) lives with the run listing, in
:mod:`engine.runs.liveness`; :mod:`engine.jobs.liveness` re-exports it. :mod:`engine.jobs.ray_launcher`
trains every fold as a task on a Ray cluster; :mod:`engine.jobs.launch_settings` says which backend a
launch uses (command line, run config, environment, the workspace's settings.yaml).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.jobs.devices import list_devices, plan_fold_assignment, resolve_devices
from engine.jobs.foreground import ForegroundLauncher
from engine.jobs.launch_settings import choose_launcher, launcher_for_run
from engine.jobs.launcher import Launcher, LocalLauncher, create_launcher, list_launchers, register_launcher
from engine.runs.liveness import effective_status, job_is_alive

__all__ = [
    "ForegroundLauncher", "Launcher", "LocalLauncher", "choose_launcher", "create_launcher", "effective_status",
    "job_is_alive", "launch_training", "launcher_for_run", "list_devices", "list_launchers", "plan_fold_assignment",
    "register_launcher", "resolve_devices",
]


def launch_training(config: str | os.PathLike | Mapping[str, Any], *, overrides: Sequence[str] = (),
                    workspace: str | os.PathLike | None = None, launcher: Launcher | None = None) -> list[Path]:
    """Validate a config (one run, or a study when it varies fields), create the run directories and
    submit the runs to ``launcher`` (default: :func:`~engine.jobs.launch_settings.choose_launcher`: background
    processes unless the config, $FOLD_STUDIO_LAUNCHER or the workspace's settings say ``ray``; a
    :class:`ForegroundLauncher` trains them here before returning). Returns the run directories.

    Nothing is written when the config is refused (:class:`~engine.errors.ConfigError`).
    """
    from engine.training.config import load_run_configs
    from engine.training.create import create_runs

    configs = load_run_configs(config, overrides)
    launcher = launcher or choose_launcher(workspace, config=configs[0])
    launcher.check(configs)  # e.g. no Ray cluster at the address: refused before anything is written
    run_dirs = [Path(p).absolute() for p in create_runs(configs, workspace=workspace)]
    launcher.submit_all(run_dirs)
    return run_dirs
