"""The run store: run directories in the workspace, in the layout of docs/formats.md.

Every write is atomic (temp file + rename, :mod:`engine.io`), so a reader never sees half a file.
``status.json`` is updated under a lock (a thread lock plus an advisory file lock), so the training
thread, a heartbeat thread and a ``cancel`` from another process never lose each other's fields.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.errors import ConfigError, RunError
from engine.io import atomic_write_json, atomic_write_parquet, atomic_write_text
from engine.workspace import resolve_workspace, runs_dir

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
SPLIT_FILE = "split.parquet"
METRICS_FILE = "metrics.csv"
LOG_FILE = "train.log"
SUBSETS = ("oof", "holdout", "test")
METRIC_COLUMNS = ["fold", "epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr",
                  "epoch_seconds", "images_per_second"]
_STATUS_LOCK = threading.RLock()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- paths


def weights_path(run_dir: str | Path, fold: int) -> Path:
    return Path(run_dir) / "weights" / f"fold{int(fold)}.safetensors"


def predictions_path(run_dir: str | Path, fold: int, subset: str) -> Path:
    if subset not in SUBSETS:
        raise ConfigError(f"The 'subset' parameter must be a str among {set(SUBSETS)}. Got {subset!r} instead.")
    return Path(run_dir) / "predictions" / f"fold{int(fold)}_{subset}.parquet"


def run_dir_of(run_id_or_path: str | Path, workspace: str | Path | None = None) -> Path:
    """The run directory of a run id (or a unique id prefix) or of a path; :class:`RunError` when missing."""
    as_path = Path(run_id_or_path)
    if (as_path / CONFIG_FILE).is_file():
        return as_path.absolute()
    root = runs_dir(workspace)
    exact = root / str(run_id_or_path)
    if (exact / CONFIG_FILE).is_file():
        return exact
    matches = sorted(p for p in root.glob(f"{run_id_or_path}*") if (p / CONFIG_FILE).is_file()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RunError(f"Run id {str(run_id_or_path)!r} is ambiguous: it starts {len(matches)} runs "
                       f"({', '.join(p.name for p in matches[:5])}); give more of it.")
    raise RunError(f"There is no run {str(run_id_or_path)!r} in workspace {str(root.parent)!r} "
                   f"(python -m engine runs lists them).")


# ---------------------------------------------------------------- readers


def read_config(run_dir: str | Path):
    from engine.training.config import parse_run_config

    path = Path(run_dir) / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"Run directory {str(run_dir)!r} has no {CONFIG_FILE}; it is not a run.") from None
    return parse_run_config(data, source=str(path))


def read_split(run_dir: str | Path) -> pd.DataFrame:
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise RunError(f"Run directory {str(run_dir)!r} has no {SPLIT_FILE}.")
    return pd.read_parquet(path)


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """One row per (fold, epoch); an empty frame with the columns before the first epoch ends."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in METRIC_COLUMNS}).astype({"fold": "int64", "epoch": "int64"})
    return pd.read_csv(path)


def read_status(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"Run directory {str(run_dir)!r} has no {STATUS_FILE}.") from None


def read_predictions(run_dir: str | Path, subset: str, *, folds: Sequence[int] | None = None,
                     views: Sequence[str] | None = None) -> pd.DataFrame:
    """Prediction rows of one subset (``oof``, ``holdout``, ``test``) over the folds that have them.

    Columns: ``sample_id``, ``fold``, ``view``, ``label_index``, ``logit_0`` ... ``logit_{C-1}``.
    """
    if folds is None:
        folds = sorted(int(f) for f in read_status(run_dir).get("folds", {}))
    frames = [pd.read_parquet(p) for f in folds if (p := predictions_path(run_dir, f, subset)).is_file()]
    if not frames:
        return pd.DataFrame(columns=["sample_id", "fold", "view", "label_index"])
    frame = pd.concat(frames, ignore_index=True)
    if views is not None:
        frame = frame[frame["view"].isin(list(views))].reset_index(drop=True)
    return frame


def expected_subsets(run_dir: str | Path) -> list[str]:
    return list(read_status(run_dir).get("subsets", SUBSETS))


def fold_is_complete(run_dir: str | Path, fold: int) -> bool:
    """True when the fold has its weights and every prediction file the run expects."""
    if not weights_path(run_dir, fold).is_file():
        return False
    return all(predictions_path(run_dir, fold, s).is_file() for s in expected_subsets(run_dir))


# ---------------------------------------------------------------- writers


@contextlib.contextmanager
def _status_lock(run_dir: Path) -> Iterator[None]:
    with _STATUS_LOCK:
        try:
            import fcntl
        except ImportError:  # not POSIX: the thread lock is all we have
            yield
            return
        with open(run_dir / ".status.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _merge(into: dict, fields: dict) -> dict:
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def update_status(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json (nested dicts merge key by key), stamp ``updated_at``; returns it."""
    run_dir = Path(run_dir)
    with _status_lock(run_dir):
        status = read_status(run_dir) if (run_dir / STATUS_FILE).is_file() else {}
        _merge(status, fields)
        status["updated_at"] = now_iso()
        atomic_write_json(run_dir / STATUS_FILE, status)
        return status


def update_fold_status(run_dir: str | Path, fold: int, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status["folds"][str(fold)]`` and refresh the overall ``progress``."""
    run_dir = Path(run_dir)
    with _status_lock(run_dir):
        status = read_status(run_dir)
        folds = status.setdefault("folds", {})
        folds.setdefault(str(int(fold)), {}).update(fields)
        status["progress"] = _progress(folds)
        status["updated_at"] = now_iso()
        atomic_write_json(run_dir / STATUS_FILE, status)
        return status


def _progress(folds: dict[str, dict]) -> float:
    """Share of the run's work done: each fold counts equally, by epochs and batches."""
    if not folds:
        return 0.0
    done = 0.0
    for f in folds.values():
        if f.get("state") == "done":
            done += 1.0
            continue
        epochs, batches = max(int(f.get("epochs") or 1), 1), max(int(f.get("batches") or 1), 1)
        epoch = max(int(f.get("epoch") or 0) - 1, 0)  # epoch is 1-based while it runs
        done += min((epoch + min(int(f.get("batch") or 0), batches) / batches) / epochs, 1.0)
    return round(done / len(folds), 4)


def append_metrics(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Add one (fold, epoch) row to metrics.csv (rewritten atomically; it stays small).

    Under the run's lock: folds of one run may train in parallel processes (one per GPU).
    """
    new = pd.DataFrame([{c: row.get(c) for c in METRIC_COLUMNS}])
    with _status_lock(Path(run_dir)):
        frame = read_metrics(run_dir)
        frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
        atomic_write_text(Path(run_dir) / METRICS_FILE, frame.to_csv(index=False))


def drop_fold_metrics(run_dir: str | Path, fold: int) -> None:
    """Forget a fold's metric rows (before it trains again from scratch)."""
    with _status_lock(Path(run_dir)):
        frame = read_metrics(run_dir)
        if not frame.empty and (frame["fold"] == fold).any():
            atomic_write_text(Path(run_dir) / METRICS_FILE, frame[frame["fold"] != fold].to_csv(index=False))


def write_predictions(run_dir: str | Path, fold: int, subset: str, frame: pd.DataFrame) -> Path:
    return atomic_write_parquet(predictions_path(run_dir, fold, subset), frame)


def write_weights(run_dir: str | Path, fold: int, state_dict: dict) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    from engine.io import atomic_write

    return atomic_write(weights_path(run_dir, fold), lambda p: save_file(tensors, str(p)))


# ---------------------------------------------------------------- creating runs


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()[:40] or "run"


def new_id(prefix: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{secrets.token_hex(3)}"


def _run_name(cfg, varied: dict[str, list[Any]], index: int) -> str:
    """The config's name (default: the model's), followed by this run's value of each varied field."""
    parts = [cfg.name or cfg.model.name]
    for key, values in varied.items():
        value = values[index]
        if key == "model.name":
            parts += [] if not cfg.name else [str(value)]
        elif not isinstance(value, (dict, list)):
            parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return " ".join(parts)


def _resolve_config(cfg, dataset):
    """The config as stored: dataset path absolute; classes, image size, augmentation, weights used filled in."""
    from engine.augment.presets import preset
    from engine.training.models import model_data_config
    from engine.training.pretrained import resolve_weights

    image_size = cfg.image_size or int(model_data_config(cfg.model)["input_size"][-1])
    augment = cfg.augment if cfg.augment is not None else preset("light", image_size)
    spec_path = dataset.spec_path or Path(cfg.dataset)
    model = cfg.model.model_copy(update={"weights_source": resolve_weights(cfg.model)})
    return cfg.model_copy(update={"dataset": str(Path(spec_path).absolute()), "classes": list(dataset.classes),
                                  "image_size": image_size, "augment": augment, "model": model,
                                  "label_overrides": dataset.overrides.record() if dataset.overrides else None})


def _check_one_split(configs) -> None:
    first = configs[0]
    for cfg in configs[1:]:
        if cfg.dataset != first.dataset or cfg.split != first.split:
            field = "dataset" if cfg.dataset != first.dataset else "split"
            raise ConfigError(f"Runs launched together share one split, so '{field}' cannot vary between them "
                              f"(got {getattr(first, field)!r} and {getattr(cfg, field)!r}). Launch them separately.")


def _open_dataset(path: str):
    from engine.data import open_dataset
    from engine.errors import DatasetError

    try:
        return open_dataset(path, write_detected_spec=False)
    except DatasetError as e:
        hint = " (for the demo dataset, run `python -m engine demo` first)" if "digits-demo" in str(path) else ""
        raise ConfigError(f"The 'dataset' parameter: {e}{hint}") from None


def create_runs(configs: Sequence, workspace: str | Path | None = None) -> list[Path]:
    """Validate every config, compute one shared split, and write a queued run directory per config.

    Nothing is written unless every config passes. With more than one config the runs form a study,
    recorded in ``workspace/studies/<study_id>.yaml`` (members and varied fields).
    """
    from engine.training.config import config_to_yaml, validate_against_dataset, varied_fields
    from engine.training.splits import make_split

    configs = list(configs)
    if not configs:
        raise ConfigError("create_runs needs at least one run config.")
    _check_one_split(configs)
    dataset = _open_dataset(configs[0].dataset)
    for cfg in configs:
        validate_against_dataset(cfg, dataset)
    resolved = [_resolve_config(cfg, dataset) for cfg in configs]
    split = make_split(dataset.manifest, configs[0].split)
    varied = varied_fields(configs) if len(configs) > 1 else {}
    study_id = new_id("study-") if len(configs) > 1 else None
    subsets = ["oof"] + (["holdout"] if split["is_holdout"].any() else []) + (["test"] if len(dataset.test_manifest) else [])
    root = runs_dir(workspace)
    run_dirs = []
    for i, cfg in enumerate(resolved):
        cfg = cfg.model_copy(update={"name": _run_name(cfg, varied, i)})
        run_dir = root / f"{new_id()}-{_slug(cfg.name)}"
        run_dir.mkdir(parents=True, exist_ok=False)
        atomic_write_text(run_dir / CONFIG_FILE, config_to_yaml(cfg))
        atomic_write_parquet(run_dir / SPLIT_FILE, split)
        atomic_write_json(run_dir / STATUS_FILE, _initial_status(run_dir.name, cfg, study_id, subsets))
        run_dirs.append(run_dir)
    if study_id:
        _write_study(workspace, study_id, run_dirs, varied)
    return run_dirs


def _initial_status(run_id: str, cfg, study_id: str | None, subsets: list[str]) -> dict[str, Any]:
    created = now_iso()
    fold = {"state": "queued", "epoch": 0, "epochs": cfg.train.epochs, "batch": 0, "batches": 0, "best_metric": None}
    return {
        "run_id": run_id, "name": cfg.name, "study_id": study_id, "state": "queued", "pid": None, "device": None,
        "created_at": created, "started_at": None, "updated_at": created, "finished_at": None, "error": None,
        "progress": 0.0, "subsets": subsets, "folds": {str(k): dict(fold) for k in range(cfg.split.k)},
    }


def studies_dir(workspace: str | Path | None = None) -> Path:
    return resolve_workspace(workspace) / "studies"


def _write_study(workspace, study_id: str, run_dirs: list[Path], varied: dict[str, list[Any]]) -> Path:
    data = {"study_id": study_id, "created_at": now_iso(), "runs": [p.name for p in run_dirs], "varied": varied}
    return atomic_write_text(studies_dir(workspace) / f"{study_id}.yaml", yaml.safe_dump(data, sort_keys=False))


def read_study(study_id: str, workspace: str | Path | None = None) -> dict[str, Any]:
    path = studies_dir(workspace) / f"{study_id}.yaml"
    if not path.is_file():
        raise RunError(f"There is no study {study_id!r} in {str(path.parent)!r}.")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def list_studies(workspace: str | Path | None = None) -> list[dict[str, Any]]:
    root = studies_dir(workspace)
    found = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.yaml"))] if root.is_dir() else []
    return sorted(found, key=lambda s: s.get("created_at", ""), reverse=True)


# ---------------------------------------------------------------- listing


def best_metrics(run_dir: str | Path, monitor: str = "val_loss") -> dict[str, float]:
    """Mean over folds of each fold's best epoch (chosen by ``monitor``): val_loss, val_accuracy, val_macro_f1."""
    metrics = read_metrics(run_dir)
    if metrics.empty:
        return {}
    ascending = monitor == "val_loss"
    best = metrics.sort_values(monitor, ascending=ascending).groupby("fold").head(1)
    return {c: float(best[c].mean()) for c in ("val_loss", "val_accuracy", "val_macro_f1")}


def list_runs(workspace: str | Path | None = None) -> pd.DataFrame:
    """One row per run, newest first: run_id, name, state, model, created_at, study_id, folds, progress,
    val_loss, val_accuracy, val_macro_f1 (mean of each fold's best epoch), path."""
    root = runs_dir(workspace)
    rows = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if not (run_dir / STATUS_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
            continue
        status = read_status(run_dir)
        cfg = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        monitor = (cfg.get("train") or {}).get("monitor", "val_loss")
        rows.append({"run_id": run_dir.name, "name": status.get("name") or cfg.get("name"), "state": status.get("state"),
                     "model": (cfg.get("model") or {}).get("name"), "created_at": status.get("created_at"),
                     "study_id": status.get("study_id"), "folds": len(status.get("folds", {})),
                     "progress": status.get("progress"), **best_metrics(run_dir, monitor), "path": str(run_dir)})
    columns = ["run_id", "name", "state", "model", "created_at", "study_id", "folds", "progress",
               "val_loss", "val_accuracy", "val_macro_f1", "path"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["created_at", "run_id"], ascending=False, ignore_index=True)
