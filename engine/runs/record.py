"""The record of a run, and the one listing of a workspace's runs.

:class:`RunRecord` is what the studio, the command line and the analysis know about a run directory:
its config (the mapping config.yaml holds, with typed accessors), its status as a person should see
it (liveness applied), which prediction and weights files exist, and — for a damaged run — what is
wrong. :func:`read_run` never raises for damage: a run whose status.json (or config.yaml) cannot be
used gets ``state == "damaged"`` and the reason in ``damage``, so one broken directory never hides
the others. :func:`list_runs` (a DataFrame) and :func:`list_run_records` are the one listing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import RunDamagedError, RunError
from engine.runs.layout import (
    SUBSETS,
    config_path,
    prediction_files,
    predictions_path,
    run_dirs,
    weight_files,
    weights_path,
)
from engine.runs.liveness import with_liveness
from engine.runs.status import DAMAGED, read_status
from engine.runs.store import best_metrics, read_config, read_metrics, read_split

LIST_COLUMNS = ["run_id", "name", "state", "model", "created_at", "study_id", "folds", "folds_done", "progress",
                "device", "error", "val_loss", "val_accuracy", "val_macro_f1", "path"]


def _section(mapping: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = mapping.get(name)
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class RunRecord:
    """One run directory as read at one moment.

    Attributes:
        run_id: the directory's name.
        path: the run directory.
        config: config.yaml as written (resolved: every field filled in); ``{}`` when missing or unreadable.
        status: status.json with liveness applied (:func:`~engine.runs.liveness.with_liveness`); ``{}``
            when there is none or it is damaged.
        predictions: subset -> folds that have a prediction file.
        weights: folds that have a weights file.
        damage: what makes the run unusable (status.json or config.yaml unreadable, wrong types), or None.
    """

    run_id: str
    path: Path
    config: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    status: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    predictions: Mapping[str, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)
    weights: tuple[int, ...] = field(default=(), repr=False, compare=False)
    damage: str | None = field(default=None, compare=False)

    # ---------------------------------------------------------------- status
    @property
    def damaged(self) -> bool:
        return self.damage is not None

    @property
    def state(self) -> str | None:
        """queued / running / done / failed / cancelled (a dead job shows as failed), or ``damaged``."""
        return DAMAGED if self.damaged else self.status.get("state")

    @property
    def error(self) -> str | None:
        """What is wrong: the damage, else the status's error (a failure, or a dead job)."""
        return self.damage or self.status.get("error")

    @property
    def progress(self) -> float:
        value = self.status.get("progress")
        return float(value) if isinstance(value, (int, float)) else 0.0

    @property
    def fold_states(self) -> dict[str, Mapping[str, Any]]:
        return dict(self.status.get("folds") or {})

    @property
    def folds_done(self) -> int:
        return sum(1 for f in self.fold_states.values() if f.get("state") == "done")

    @property
    def alive(self) -> bool:
        return bool(self.status.get("alive"))

    @property
    def created_at(self) -> str | None:
        return self.status.get("created_at")

    @property
    def study_id(self) -> str | None:
        return self.status.get("study_id")

    @property
    def subsets(self) -> list[str]:
        """The prediction subsets each finished fold has (from the status; all three when unknown)."""
        return list(self.status.get("subsets") or SUBSETS)

    # ---------------------------------------------------------------- config
    @property
    def name(self) -> str:
        return str(self.status.get("name") or self.config.get("name") or self.run_id)

    @property
    def model_name(self) -> str | None:
        return _section(self.config, "model").get("name")

    @property
    def classes(self) -> list[str] | None:
        classes = self.config.get("classes")
        return [str(c) for c in classes] if isinstance(classes, list) and classes else None

    @property
    def k(self) -> int | None:
        """Number of folds (the config's ``split.k``, else the status's fold count)."""
        k = _section(self.config, "split").get("k")
        return int(k) if isinstance(k, int) else (len(self.fold_states) or None)

    @property
    def label_smoothing(self) -> float:
        return float(_section(self.config, "train").get("label_smoothing", 0.0) or 0.0)

    @property
    def monitor(self) -> str:
        return str(_section(self.config, "train").get("monitor") or "val_loss")

    @property
    def tta_views(self) -> list[str]:
        return list(self.config.get("tta_views") or [])

    @property
    def dataset(self) -> str | None:
        """Path of the dataset spec the run was trained on (absolute in a resolved config)."""
        return self.config.get("dataset")

    @property
    def device(self) -> str | None:
        """The device the run trains on (the status's, once a job picked one), else the config's wish."""
        return self.status.get("device") or self.config.get("device")

    # ---------------------------------------------------------------- files
    def folds(self, subset: str) -> list[int]:
        """Folds that have a prediction file for ``subset``, ascending."""
        return list(self.predictions.get(subset, ()))

    def finished_folds(self) -> list[int]:
        """Folds the status says are done, ascending."""
        return sorted(int(k) for k, f in self.fold_states.items() if f.get("state") == "done")

    def missing_predictions(self) -> list[tuple[int, str, Path]]:
        """``(fold, subset, path)`` of every prediction file a finished fold should have and has not."""
        return [(fold, subset, predictions_path(self.path, fold, subset)) for fold in self.finished_folds()
                for subset in self.subsets if fold not in self.predictions.get(subset, ())]

    def missing_weights(self) -> list[tuple[int, Path]]:
        """``(fold, path)`` of the weights file of every finished fold that has none (deleted after the fact)."""
        return [(fold, weights_path(self.path, fold)) for fold in self.finished_folds() if fold not in self.weights]

    def missing_files(self) -> str | None:
        """What the finished folds lack (weights, prediction files) and what to do, in one sentence; None when every
        finished fold has its files. The listing's ``error`` of such a run; *Resume* trains those folds again."""
        paths = [p for _, p in self.missing_weights()] + [p for _, _, p in self.missing_predictions()]
        if not paths:
            return None
        folds = sorted({f for f, _ in self.missing_weights()} | {f for f, _, _ in self.missing_predictions()})
        shown = ", ".join(repr(str(p)) for p in paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
        return (f"fold(s) {folds} are done but {'a file is' if len(paths) == 1 else f'{len(paths)} files are'} "
                f"missing: {shown}. Resume the run to train {'that fold' if len(folds) == 1 else 'those folds'} "
                f"again (python -m engine resume {self.run_id}); its other folds are kept.")

    def split(self) -> pd.DataFrame:
        """The run's split (read now): ``sample_id``, ``fold``, ``is_holdout``."""
        return read_split(self.path)

    def metrics(self) -> pd.DataFrame:
        """The run's metrics.csv (read now): one row per (fold, epoch)."""
        return read_metrics(self.path)

    def best_metrics(self) -> dict[str, float]:
        """Mean over folds of each fold's best epoch by the run's ``train.monitor``."""
        return best_metrics(self.path, self.monitor)

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name, "model": self.model_name,
                "label_smoothing": self.label_smoothing, "k": _section(self.config, "split").get("k"),
                "views": self.tta_views, "path": str(self.path)}


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """The record of one run directory. Never raises for a damaged run (see :attr:`RunRecord.damage`)."""
    path = Path(run_dir).absolute()
    problems = []
    try:
        raw = read_status(path)
    except RunDamagedError as e:
        raw, problems = {}, [str(e)]
    except RunError:  # no status.json: a run made by other tools (or being deleted); the files still count
        raw = {}
    config: Mapping[str, Any] = {}
    if config_path(path).is_file():
        try:
            config = read_config(path)
        except RunError as e:
            problems.append(str(e))
    status = with_liveness(path, raw) if raw else {}
    return RunRecord(run_id=path.name, path=path, config=config, status=status, predictions=prediction_files(path),
                     weights=weight_files(path), damage=" ".join(problems) or None)


def list_run_records(workspace: str | os.PathLike | None = None, *,
                     states: Iterable[str] | None = None) -> list[RunRecord]:
    """Every run of the workspace (a folder of ``runs/`` with a status.json), newest first.

    ``states`` keeps the runs in those states (liveness applied; ``damaged`` for damaged runs).
    """
    wanted = set(states) if states is not None else None
    records = [r for r in map(read_run, run_dirs(workspace)) if wanted is None or r.state in wanted]
    return sorted(records, key=lambda r: (str(r.created_at or ""), r.run_id), reverse=True)


def _listing_row(record: RunRecord) -> dict[str, Any]:
    try:
        best = {} if record.damaged else record.best_metrics()
        note = None
    except RunError as e:  # a damaged metrics.csv: the run is listed, its metrics are not
        best, note = {}, str(e)
    return {"run_id": record.run_id, "name": record.name, "state": record.state, "model": record.model_name,
            "created_at": record.created_at, "study_id": record.study_id, "folds": len(record.fold_states),
            "folds_done": record.folds_done, "progress": record.progress, "device": record.device,
            "error": " ".join(filter(None, (record.error, note, record.missing_files()))) or None, **{k: v for k, v in best.items() if math.isfinite(v)},
            "path": str(record.path)}


def runs_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """The listing's table of ``records`` (columns as :func:`list_runs`), in their order."""
    return pd.DataFrame([_listing_row(r) for r in records], columns=LIST_COLUMNS)


def list_runs(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run, newest first: ``run_id``, ``name``, ``state`` (liveness applied: a dead job is
    ``failed``; ``damaged`` when its status cannot be read), ``model``, ``created_at``, ``study_id``,
    ``folds``, ``folds_done``, ``progress``, ``device``, ``error`` (what failed or is damaged, or the files a
    finished fold lacks: :meth:`RunRecord.missing_files`),
    ``val_loss``, ``val_accuracy``, ``val_macro_f1`` (mean of each fold's best epoch by ``train.monitor``),
    ``path``."""
    return runs_frame(list_run_records(workspace))
