"""The files of a run directory other than its status: config, split, metrics, predictions, weights,
the job's log, and the workspace's study files. Storage only: what to train and how is decided above
(:mod:`engine.training.create` makes runs; :mod:`engine.training.fit` trains them).

Every write is atomic (temp file + rename, :mod:`engine.io`), so a reader never sees half a file; a
new run directory is written in full under a hidden name and renamed into place, so a listing never
sees a run that is half created. A file that is there but cannot be read raises
:class:`~engine.errors.RunDamagedError` naming it (never a pyarrow or YAML traceback).

``config.yaml`` is read here and only here (:func:`read_config`), as the plain mapping the file holds;
its schema (:class:`engine.training.config.RunConfig`) lives with the training code, which parses the
mapping with :func:`engine.training.config.read_run_config`. The run record
(:class:`engine.runs.record.RunRecord`) offers typed accessors of the fields the listing and the
analysis need.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.errors import RunDamagedError, RunError
from engine.io import atomic_write, atomic_write_json, atomic_write_parquet, atomic_write_text
from engine.runs.layout import (
    CONFIG_FILE,
    METRICS_FILE,
    SPLIT_FILE,
    STAGING_PREFIX,
    STATUS_FILE,
    SUBSETS,
    check_subset,
    config_path,
    log_path,
    metrics_path,
    new_id,
    new_run_id,
    predictions_dir,
    predictions_path,
    run_dir_of,
    split_path,
    status_path,
    weights_path,
)
from engine.runs.status import (
    expected_subsets,
    fold_is_complete,
    initial_status,
    read_status,
    status_lock,
    update_fold_status,
    update_status,
)
from engine.runs.timestamps import now_iso
from engine.workspace import resolve_workspace, runs_dir

# Status readers and writers (engine.runs.status) and paths (engine.runs.layout) are re-exported for code
# that imports them from this module.
__all__ = [
    "CONFIG_FILE", "METRICS_FILE", "METRIC_COLUMNS", "SPLIT_FILE", "STATUS_FILE", "SUBSETS", "append_metrics",
    "best_metrics", "create_run_dir", "discard_run_dirs", "drop_fold_metrics", "expected_subsets", "fold_is_complete",
    "list_studies", "now_iso", "predictions_path", "publish_run_dir", "read_config", "read_log_tail", "read_metrics",
    "read_predictions", "read_split", "read_status", "read_study", "remove_stale_staging", "run_dir_of",
    "stage_run_dir", "studies_dir", "update_fold_status", "update_status", "weights_path", "write_config",
    "write_predictions", "write_study", "write_weights",
]

METRIC_COLUMNS = ["fold", "epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr",
                  "epoch_seconds", "images_per_second"]
log = logging.getLogger(__name__)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: a listing reads every config


def _unreadable(path: Path, run_dir: str | os.PathLike, e: BaseException, fix: str) -> RunDamagedError:
    reason = f"{type(e).__name__}: {e}".strip().rstrip(":")
    return RunDamagedError(f"Run {Path(run_dir).name!r} is damaged: {str(path)!r} cannot be read ({reason[:300]}). "
                           f"{fix}")


# ---------------------------------------------------------------- config


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``config.yaml`` as the mapping it holds (the resolved config: every field filled in).

    :class:`RunError` when the directory has no config (it is not a run), :class:`RunDamagedError`
    when the file is not a YAML mapping. For the typed config use
    :func:`engine.training.config.read_run_config`.
    """
    path = config_path(run_dir)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader: yaml.safe_load, with libyaml
    except FileNotFoundError:
        raise RunError(f"Run directory {str(run_dir)!r} has no {CONFIG_FILE}; it is not a run.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise _unreadable(path, run_dir, e, "Restore the file, or delete the run directory.") from None
    if not isinstance(data, dict):
        raise RunDamagedError(f"Run {Path(run_dir).name!r} is damaged: {str(path)!r} holds a "
                              f"{type(data).__name__} instead of a mapping of config fields.")
    return data


def write_config(run_dir: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Replace the run's config.yaml (e.g. ``tta_views`` after a re-prediction)."""
    return atomic_write_text(config_path(run_dir), _config_text(config))


def _config_text(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------- split, metrics


def read_split(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``sample_id``, ``fold`` (-1 for the holdout), ``is_holdout``: one row per training sample."""
    path = split_path(run_dir)
    if not path.is_file():
        raise RunError(f"Run directory {str(run_dir)!r} has no {SPLIT_FILE}.")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated file
        raise _unreadable(path, run_dir, e, "The split cannot be rebuilt from the other files: create the run "
                                            "again.") from None


def read_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per (fold, epoch); an empty frame with the columns before the first epoch ends."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in METRIC_COLUMNS}).astype({"fold": "int64", "epoch": "int64"})
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise _unreadable(path, run_dir, e, "Training the folds again rewrites it (delete it, then resume).") from None


def append_metrics(run_dir: str | os.PathLike, row: dict[str, Any]) -> None:
    """Add one (fold, epoch) row to metrics.csv (rewritten atomically; it stays small).

    Under the run's lock: folds of one run may train in parallel processes (one per GPU).
    """
    new = pd.DataFrame([{c: row.get(c) for c in METRIC_COLUMNS}])
    with status_lock(run_dir):
        frame = read_metrics(run_dir)
        frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
        atomic_write_text(metrics_path(run_dir), frame.to_csv(index=False))


def drop_fold_metrics(run_dir: str | os.PathLike, fold: int) -> None:
    """Forget a fold's metric rows (before it trains again from scratch)."""
    with status_lock(run_dir):
        frame = read_metrics(run_dir)
        if not frame.empty and (frame["fold"] == fold).any():
            atomic_write_text(metrics_path(run_dir), frame[frame["fold"] != fold].to_csv(index=False))


def best_metrics(run_dir: str | os.PathLike, monitor: str = "val_loss") -> dict[str, float]:
    """Mean over folds of each fold's best epoch (chosen by ``monitor``): val_loss, val_accuracy, val_macro_f1."""
    metrics = read_metrics(run_dir)
    if metrics.empty or monitor not in metrics:
        return {}
    best = metrics.sort_values(monitor, ascending=monitor == "val_loss").groupby("fold").head(1)
    return {c: float(best[c].mean()) for c in ("val_loss", "val_accuracy", "val_macro_f1")}


# ---------------------------------------------------------------- predictions, weights


def read_predictions(run_dir: str | os.PathLike, subset: str, *, folds: Sequence[int] | None = None,
                     views: Sequence[str] | None = None) -> pd.DataFrame:
    """Prediction rows of one subset (``oof``, ``holdout``, ``test``) over the folds that have a file.

    Columns: ``sample_id``, ``fold``, ``view``, ``label_index``, ``logit_0`` ... ``logit_{C-1}``.
    ``folds`` defaults to the run's folds; a fold without a file is skipped (the analysis checks that
    finished folds have theirs, :meth:`engine.runs.RunRecord.missing_predictions`). A file that cannot
    be read raises :class:`RunDamagedError` naming it.
    """
    check_subset(subset)
    if folds is None:
        folds = sorted(int(f) for f in read_status(run_dir).get("folds", {}))
    frames = []
    for fold in folds:
        path = predictions_path(run_dir, fold, subset)
        if not path.is_file():
            continue
        try:
            frames.append(pd.read_parquet(path))
        except Exception as e:  # pyarrow raises several types for a truncated file
            raise _unreadable(path, run_dir, e, f"Predict fold {fold} again (python -m engine predict "
                                                f"{Path(run_dir).name} --tta VIEWS --folds {fold}) or train it "
                                                "again (delete the file, then resume the run).") from None
    if not frames:
        return pd.DataFrame(columns=["sample_id", "fold", "view", "label_index"])
    frame = pd.concat(frames, ignore_index=True)
    if views is not None:
        frame = frame[frame["view"].isin(list(views))].reset_index(drop=True)
    return frame


def write_predictions(run_dir: str | os.PathLike, fold: int, subset: str, frame: pd.DataFrame) -> Path:
    return atomic_write_parquet(predictions_path(run_dir, fold, subset), frame)


def write_weights(run_dir: str | os.PathLike, fold: int, state_dict: dict) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return atomic_write(weights_path(run_dir, fold), lambda p: save_file(tensors, str(p)))


def predictions_mtime(run_dir: str | os.PathLike) -> float:
    """Latest modification time of the run's prediction files (0.0 without any): changes with every write."""
    try:
        return max((e.stat().st_mtime_ns for e in os.scandir(predictions_dir(run_dir))), default=0) / 1e9
    except OSError:
        return 0.0


# ---------------------------------------------------------------- the job's log


def read_log_tail(run_dir: str | os.PathLike, lines: int = 40, *, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of the job's log, read from its end (a long log costs nothing); "" without one."""
    try:
        with open(log_path(run_dir), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------- creating a run directory

STALE_STAGING_S = 3600.0  # writing a run takes seconds; a staging folder untouched this long lost its writer


def stage_run_dir(workspace: str | os.PathLike | None, *, name: str, config: Mapping[str, Any], split: pd.DataFrame,
                  study_id: str | None, subsets: Sequence[str], folds: int, epochs: int) -> Path:
    """Write a new queued run (config, split, status) under the hidden name ``runs/.creating-<run_id>``.

    No listing sees it until :func:`publish_run_dir` renames it into place; a staging folder whose writer
    died (killed mid-launch) is removed by a later one (:func:`remove_stale_staging`). Returns the staging
    folder (removed again if a write fails).
    """
    root = runs_dir(workspace)
    remove_stale_staging(workspace)
    staging = root / f"{STAGING_PREFIX}{new_run_id(name)}"
    staging.mkdir(parents=True)
    try:
        atomic_write_text(config_path(staging), _config_text(config))
        atomic_write_parquet(split_path(staging), split)
        status = initial_status(staging.name.removeprefix(STAGING_PREFIX), name=name, study_id=study_id,
                                subsets=list(subsets), folds=folds, epochs=epochs)
        atomic_write_json(status_path(staging), status)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def publish_run_dir(staging: str | os.PathLike) -> Path:
    """Rename a staged run (:func:`stage_run_dir`) into place, ``runs/<run_id>``: from now on it is listed."""
    staging = Path(staging)
    final = staging.with_name(staging.name.removeprefix(STAGING_PREFIX))
    os.rename(staging, final)
    return final


def create_run_dir(workspace: str | os.PathLike | None, *, name: str, config: Mapping[str, Any], split: pd.DataFrame,
                   study_id: str | None, subsets: Sequence[str], folds: int, epochs: int) -> Path:
    """Write a new queued run (config, split, status) and return its directory ``runs/<run_id>``.

    The files are written under a hidden name first and the folder is renamed into place at the end,
    so a listing (another process, the studio) never sees a run that is half written.
    """
    return publish_run_dir(stage_run_dir(workspace, name=name, config=config, split=split, study_id=study_id,
                                         subsets=subsets, folds=folds, epochs=epochs))


def remove_stale_staging(workspace: str | os.PathLike | None = None, *,
                         max_age_s: float = STALE_STAGING_S) -> list[Path]:
    """Delete the staging folders (``runs/.creating-*``) nobody has written to for ``max_age_s`` seconds:
    what a launch killed half-way (the studio or ``train`` SIGKILLed, the machine rebooted) left behind.
    Returns the folders removed. A staging folder is never a run: no listing shows it, old or new."""
    removed = []
    try:
        entries = list(os.scandir(runs_dir(workspace)))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not (entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if age > max_age_s:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    if removed:
        log.info("Removed %d run folder(s) left half-written by an interrupted launch: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed


def discard_run_dirs(paths: Sequence[str | os.PathLike]) -> None:
    """Delete run folders (staged or just published) of a launch that did not complete."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- studies


def studies_dir(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / "studies"


def new_study_id() -> str:
    return new_id("study-")


def write_study(workspace: str | os.PathLike | None, study_id: str, run_ids: Sequence[str],
                varied: Mapping[str, list[Any]]) -> Path:
    """``studies/<study_id>.yaml``: the runs launched together (one shared split) and the fields they vary."""
    data = {"study_id": study_id, "created_at": now_iso(), "runs": list(run_ids), "varied": dict(varied)}
    return atomic_write_text(studies_dir(workspace) / f"{study_id}.yaml", yaml.safe_dump(data, sort_keys=False))


def read_study(study_id: str, workspace: str | os.PathLike | None = None) -> dict[str, Any]:
    path = studies_dir(workspace) / f"{study_id}.yaml"
    if not path.is_file():
        raise RunError(f"There is no study {study_id!r} in {str(path.parent)!r}.")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def list_studies(workspace: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    root = studies_dir(workspace)
    found = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.yaml"))] if root.is_dir() else []
    return sorted(found, key=lambda s: s.get("created_at", ""), reverse=True)
