"""Where a run's files live: the one module that spells the names of a run directory's files.

::

    <workspace>/runs/<run_id>/
        config.yaml                      the resolved run config
        status.json                      state, progress, per-fold state, the job's pid (atomic, locked)
        split.parquet                    sample_id -> fold, is_holdout
        metrics.csv                      one row per (fold, epoch)
        train.log                        the job's output
        predictions/fold{k}_{subset}.parquet
        weights/fold{k}.safetensors
        tensorboard/fold{k}/, tensorboard/   TensorBoard event files: per-fold curves, the run's hparams
        .status.lock, .fold_queue.json, .fold_queue.lock   (bookkeeping of the job layer)
        .cancel                          a cancel asked of a run trained on Ray (read by its fold tasks)
    <workspace>/runs/.creating-<run_id>/   a run being written (renamed into place when complete)

Every other module — the rest of the engine, the studio, users' scripts — asks for a path by what it
holds (:func:`status_path`, :func:`predictions_path`, ...), never by its file name.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import ConfigError, RunError
from engine.workspace import runs_dir

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
SPLIT_FILE = "split.parquet"
METRICS_FILE = "metrics.csv"
LOG_FILE = "train.log"
PREDICTIONS_DIR = "predictions"
WEIGHTS_DIR = "weights"
TENSORBOARD_DIR = "tensorboard"
SUBSETS = ("oof", "holdout", "test")
STAGING_PREFIX = ".creating-"  # runs/.creating-<run_id>: a run being written, hidden from every listing
_PREDICTION_FILE = re.compile(r"^fold(\d+)_(oof|holdout|test)\.parquet$")
_WEIGHTS_FILE = re.compile(r"^fold(\d+)\.safetensors$")


def config_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CONFIG_FILE


def status_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / STATUS_FILE


def split_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / SPLIT_FILE


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS_FILE


def log_path(run_dir: str | os.PathLike) -> Path:
    """The job's log (``train.log``): its stdout / stderr and the engine's log records."""
    return Path(run_dir) / LOG_FILE


def predictions_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / PREDICTIONS_DIR


def check_subset(subset: str) -> str:
    if subset not in SUBSETS:
        raise ConfigError(f"The 'subset' parameter must be a str among {set(SUBSETS)}. Got {subset!r} instead.")
    return subset


def predictions_path(run_dir: str | os.PathLike, fold: int, subset: str) -> Path:
    return predictions_dir(run_dir) / f"fold{int(fold)}_{check_subset(subset)}.parquet"


def weights_path(run_dir: str | os.PathLike, fold: int) -> Path:
    return Path(run_dir) / WEIGHTS_DIR / f"fold{int(fold)}.safetensors"


def tensorboard_dir(run_dir: str | os.PathLike, fold: int | None = None) -> Path:
    """``<run_dir>/tensorboard`` (the run's hparams), or ``.../fold<k>`` (one fold's curves)."""
    root = Path(run_dir) / TENSORBOARD_DIR
    return root if fold is None else root / f"fold{int(fold)}"


def status_lock_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / ".status.lock"


def fold_queue_path(run_dir: str | os.PathLike) -> Path:
    """The job layer's list of folds still to claim while folds are spread over several processes."""
    return Path(run_dir) / ".fold_queue.json"


def fold_queue_lock_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / ".fold_queue.lock"


def cancel_request_path(run_dir: str | os.PathLike) -> Path:
    """Written by a cancel of a run trained on a cluster; its fold tasks, wherever they run, stop on seeing it."""
    return Path(run_dir) / ".cancel"


def prediction_files(run_dir: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Subset -> the folds that have a prediction file for it (ascending), from one directory listing."""
    found: dict[str, list[int]] = {s: [] for s in SUBSETS}
    try:
        names = os.listdir(predictions_dir(run_dir))
    except OSError:
        names = []
    for name in names:
        if m := _PREDICTION_FILE.match(name):
            found[m.group(2)].append(int(m.group(1)))
    return {s: tuple(sorted(folds)) for s, folds in found.items()}


def weight_files(run_dir: str | os.PathLike) -> tuple[int, ...]:
    """The folds that have a weights file, ascending."""
    try:
        names = os.listdir(Path(run_dir) / WEIGHTS_DIR)
    except OSError:
        return ()
    return tuple(sorted(int(m.group(1)) for name in names if (m := _WEIGHTS_FILE.match(name))))


# ---------------------------------------------------------------- run directories in a workspace


def workspace_of(run_dir: str | os.PathLike) -> Path | None:
    """The workspace holding ``run_dir`` (``<workspace>/runs/<run_id>``), or None for a run directory elsewhere."""
    run_dir = Path(run_dir).absolute()
    return run_dir.parent.parent if run_dir.parent.name == "runs" else None


def run_dirs(workspace: str | os.PathLike | None = None, *,
             having: Callable[[Path], Path] = status_path) -> list[Path]:
    """Run directories of a workspace, by name: folders of ``runs/`` holding a status (or the file
    ``having(run_dir)`` names, e.g. ``having=split_path``). Hidden folders (a run being created) are not."""
    root = runs_dir(workspace)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in entries if not p.name.startswith(".") and having(p).is_file()]


def run_dir_of(run_id_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """The run directory of a run id (or a unique id prefix) or of a path; :class:`RunError` when missing."""
    as_path = Path(run_id_or_path)
    if config_path(as_path).is_file():
        return as_path.absolute()
    root = runs_dir(workspace)
    exact = root / str(run_id_or_path)
    if config_path(exact).is_file():
        return exact
    matches = sorted(p for p in root.glob(f"{run_id_or_path}*") if config_path(p).is_file()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RunError(f"Run id {str(run_id_or_path)!r} is ambiguous: it starts {len(matches)} runs "
                       f"({', '.join(p.name for p in matches[:5])}); give more of it.")
    raise RunError(f"There is no run {str(run_id_or_path)!r} in workspace {str(root.parent)!r} "
                   f"(python -m engine runs lists them).")


def new_id(prefix: str = "") -> str:
    """A fresh id: ``<prefix>YYYYMMDD-HHMMSS-<6 hex>`` (sorts by creation time)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{secrets.token_hex(3)}"


def new_run_id(name: str) -> str:
    """A fresh run id ending with a slug of the run's name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower()[:40] or "run"
    return f"{new_id()}-{slug}"
