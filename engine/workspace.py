"""Where Fold Studio keeps its files: the workspace (runs, studies, caches, the demo dataset).

Default ``./workspace``; the environment variable ``FOLD_STUDIO_WORKSPACE`` or an explicit argument
(``--workspace`` on the command line) overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

WORKSPACE_ENV = "FOLD_STUDIO_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"


def resolve_workspace(workspace: str | os.PathLike | None = None) -> Path:
    """The workspace folder (created if needed): the argument, else $FOLD_STUDIO_WORKSPACE, else ./workspace."""
    chosen = workspace or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
    path = Path(chosen).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / "runs"


def cache_dir(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / "cache"


def datasets_dir(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / "datasets"
