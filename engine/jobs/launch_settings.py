"""Which backend launches a run: the command line, the run config, the environment or the workspace's settings.

``<workspace>/settings.yaml`` holds the workspace's defaults (the studio's Train page can save them)::

    launcher: ray          # local (default) | ray
    ray_address: auto      # the Ray cluster: auto (the one `ray start` last started here) or HEAD_IP:6379

The first that says something wins: ``--launcher`` / ``--ray-address`` on the command line (or the
studio's choice), the run config's ``launcher`` / ``ray_address`` fields, ``$FOLD_STUDIO_LAUNCHER``,
the workspace's settings.yaml, else ``local``. Cancelling goes to the backend the run's status names
(:func:`launcher_for_run`), whatever the defaults say now.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError
from engine.io import atomic_write_text
from engine.workspace import resolve_workspace

SETTINGS_FILE = "settings.yaml"
LAUNCHER_ENV = "FOLD_STUDIO_LAUNCHER"
SETTINGS_FIELDS = ("launcher", "ray_address")


def settings_path(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / SETTINGS_FILE


def read_settings(workspace: str | os.PathLike | None = None) -> dict[str, Any]:
    """The workspace's settings.yaml as a dict ({} when there is none); :class:`ConfigError` naming a bad field."""
    from engine.jobs.launcher import list_launchers

    path = settings_path(workspace)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"The workspace settings {str(path)!r} are not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The workspace settings {str(path)!r} must be a YAML mapping. Got {type(data).__name__}.")
    unknown = sorted(set(data) - set(SETTINGS_FIELDS))
    if unknown:
        raise ConfigError(f"The workspace settings {str(path)!r} have unknown field(s) {unknown}; "
                          f"allowed: {list(SETTINGS_FIELDS)}.")
    if data.get("launcher") is not None and data["launcher"] not in list_launchers():
        raise ConfigError(f"The 'launcher' field of {str(path)!r} must be one of {list_launchers()}. "
                          f"Got {data['launcher']!r} instead.")
    if data.get("ray_address") is not None and not isinstance(data["ray_address"], str):
        raise ConfigError(f"The 'ray_address' field of {str(path)!r} must be a string such as 'auto' or "
                          f"'10.0.0.1:6379'. Got {data['ray_address']!r} instead.")
    return data


def write_settings(workspace: str | os.PathLike | None = None, **fields: Any) -> Path:
    """Merge ``fields`` (``launcher``, ``ray_address``; None removes one) into the workspace's settings.yaml."""
    unknown = sorted(set(fields) - set(SETTINGS_FIELDS))
    if unknown:
        raise ConfigError(f"Unknown workspace setting(s) {unknown}; allowed: {list(SETTINGS_FIELDS)}.")
    data = {**read_settings(workspace), **fields}
    data = {k: v for k, v in data.items() if v is not None}
    return atomic_write_text(settings_path(workspace), yaml.safe_dump(data, sort_keys=False))


def choose_launcher(workspace: str | os.PathLike | None = None, *, name: str | None = None,
                    address: str | None = None, config: Any = None):
    """The launcher for new jobs: ``name`` / ``address`` (command line, studio), else the run config's
    ``launcher`` / ``ray_address``, else $FOLD_STUDIO_LAUNCHER, else the workspace settings, else local."""
    from engine.jobs.launcher import create_launcher

    settings = read_settings(workspace)
    name = (name or getattr(config, "launcher", None) or os.environ.get(LAUNCHER_ENV) or settings.get("launcher")
            or "local")
    if name != "ray":
        return create_launcher(name, workspace=workspace)
    address = address or getattr(config, "ray_address", None) or settings.get("ray_address")
    return create_launcher(name, workspace=workspace, address=address)


def launcher_for_run(run_dir: str | os.PathLike, workspace: str | os.PathLike | None = None):
    """The backend that runs (or last ran) ``run_dir``, for cancelling it: Ray when its status names a Ray
    driver (at the address recorded there), else the local one."""
    from engine.errors import RunError
    from engine.jobs.launcher import create_launcher
    from engine.runs import read_status
    from engine.runs.liveness import driven_remotely

    try:
        status = read_status(run_dir)
    except RunError:  # no status, or a damaged one: nothing to route (the local launcher says why it cannot act)
        status = {}
    if driven_remotely(status) and status.get("launcher") == "ray":
        return create_launcher("ray", workspace=workspace, address=(status.get("ray") or {}).get("address"))
    return create_launcher("local", workspace=workspace)
