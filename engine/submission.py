"""Writing a submission: the chosen combination's test predictions in the sample-submission format.

:func:`make_submission` merges each chosen fold model's TTA views (a merge mode), votes across the
chosen runs x folds (soft or hard), and fills the target column of the dataset's sample-submission
template row for row, keeping its id column, its row order and its other columns. The target is
written as class names, or as class indices when the template's values are indices and not names.

Next to ``submission.csv`` it writes ``submission.json``, the record of what made it: runs, folds,
views, voting, merge mode, weights, and the score the same combination gets on the holdout (or, when
the runs have no common holdout, on OOF, where each sample is judged by one fold model per run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.analysis.load import PredictionSet, RunInfo, load_predictions, open_runs
from engine.analysis.metrics import score
from engine.analysis.tta import check_tta_mode
from engine.analysis.voting import check_voting, combine
from engine.errors import AnalysisError
from engine.io import atomic_write_text
from engine.runs import predictions_path
from engine.workspace import resolve_workspace

SIDECAR_VERSION = 1


@dataclass
class SubmissionResult:
    """The written CSV (``path``), its sidecar JSON (``sidecar_path``), the frame and the sidecar record."""

    path: Path
    sidecar_path: Path
    frame: pd.DataFrame
    record: dict[str, Any]


def sidecar_path_of(csv_path: str | Path) -> Path:
    """``sub.csv`` -> ``sub.json`` (the record that sits next to a submission)."""
    return Path(csv_path).with_suffix(".json")


def _chosen_folds(runs: list[RunInfo], folds: Sequence[int] | None) -> list[int]:
    if folds is not None:
        return sorted({int(f) for f in folds})
    ks = {int((r.config.get("split") or {}).get("k") or 0) for r in runs}
    if len(ks) != 1 or 0 in ks:
        raise AnalysisError(f"Runs {[r.run_id for r in runs]} have different (or no) fold counts {sorted(ks)}; "
                            "name the folds to use with folds=[...] (--folds).")
    return list(range(ks.pop()))


def _check_test_files(runs: list[RunInfo], folds: list[int]) -> None:
    for run in runs:
        have = run.folds("test")
        missing = [f for f in folds if f not in have]
        if missing:
            files = ", ".join(str(predictions_path(run.path, f, "test")) for f in missing)
            raise AnalysisError(
                f"Run {run.run_id!r} has no test predictions for fold(s) {missing} ({files} missing; folds with test "
                f"predictions: {have or 'none'}). Finish the run (python -m engine resume), predict it "
                "(python -m engine predict), or choose other folds.")


def _template(runs: list[RunInfo]) -> tuple[pd.DataFrame | None, str, str, str | None]:
    """(template frame or None, id column, target column, template path) from the runs' dataset spec."""
    from engine.data.manifest import read_sample_submission
    from engine.data.spec import read_spec

    datasets = {r.dataset for r in runs}
    if len(datasets) != 1 or None in datasets:
        raise AnalysisError(f"Runs {[r.run_id for r in runs]} were trained on different (or unnamed) datasets "
                            f"{sorted(map(str, datasets))}; a submission combines runs of one dataset.")
    spec_path = Path(datasets.pop())
    spec = read_spec(spec_path)
    if spec.sample_submission is None:
        return None, "id", "label", None
    path = spec_path.parent / spec.sample_submission.csv
    frame = read_sample_submission(spec, spec_path.parent)
    s = spec.sample_submission
    return frame, s.id_column, s.target_column, str(path)


def target_format(values: pd.Series, classes: list[str]) -> str:
    """``name`` or ``index``: how a template writes its target (names unless its values are indices but not names)."""
    seen = {str(v) for v in values if str(v) != ""}
    indices = {str(i) for i in range(len(classes))}
    if seen and seen <= indices and not seen <= set(classes):
        return "index"
    return "name"


def _expected(runs: list[RunInfo], folds: list[int], views, voting: str, tta: str, weights) -> dict[str, Any] | None:
    """The combination's score on the holdout (fold models voted), else on OOF; None when neither exists."""
    def scored(preds: PredictionSet, basis: str) -> dict[str, Any]:
        labels, proba = combine(preds.merge_tta(tta, views).logits, voting, weights)
        metrics = score(preds.labels, proba=proba, y_pred=labels)
        keep = ("accuracy", "balanced_accuracy", "macro_f1") + (("log_loss", "ece") if proba is not None else ())
        return {"subset": preds.subset, "basis": basis, "n": int(preds.n_samples),
                **{k: float(metrics[k]) for k in keep}}

    try:
        holdout = load_predictions(runs, "holdout", folds=folds, views=views)
        if holdout.n_samples:
            return scored(holdout, "every chosen fold model on the labelled holdout, combined as submitted")
    except AnalysisError:
        pass
    try:
        oof = load_predictions(runs, "oof", folds=folds, views=views)
    except AnalysisError:
        return None
    basis = "out-of-fold: each sample by one fold model per run (the fold ensemble itself is not measured)"
    if weights is not None:  # weights are per (run, fold); OOF has one member per run
        weights, basis = None, basis + "; equal run weights"
    return scored(oof, basis)


def make_submission(runs: Sequence[str | Path | RunInfo] | str | Path | RunInfo, *, out: str | Path | None = None,
                    voting: str = "soft", tta: str = "mean", folds: Sequence[int] | None = None,
                    views: Sequence[str] | None = None, weights: Sequence[float] | None = None,
                    workspace: str | Path | None = None) -> SubmissionResult:
    """Write the submission CSV and its sidecar JSON; returns both paths, the frame and the record.

    Args:
        runs: run ids (under ``<workspace>/runs/``) or run directories, trained on one dataset.
        out: CSV path (default ``<workspace>/submissions/submission-<UTC time>.csv``).
        voting: ``soft``, ``hard``, ``logit_mean`` or ``geometric`` across the chosen runs x folds.
        tta: merge mode of each fold model's views (``mean``, ``geometric``, ``max``, ``logit_mean``).
        folds: fold indices to use in every run (default: all ``split.k`` folds; a missing one is refused).
        views: TTA views to merge (default: every view the test predictions have).
        weights: one weight per (run, fold) member, in run then fold order (default: equal).
    """
    if isinstance(runs, (str, Path, RunInfo)):
        runs = [runs]
    check_voting(voting)
    check_tta_mode(tta)
    infos = open_runs(runs, workspace=workspace)
    chosen = _chosen_folds(infos, folds)
    _check_test_files(infos, chosen)
    raw = load_predictions(infos, "test", folds=chosen, views=views)
    views = list(views) if views is not None else raw.views()
    test = raw.merge_tta(tta, views)
    labels, _ = combine(test.logits, voting, weights)
    template, id_col, target_col, template_path = _template(infos)
    classes = test.classes
    if template is None:
        frame = pd.DataFrame({id_col: test.sample_ids.astype(str), target_col: np.asarray(classes, dtype=object)[labels]})
        fmt = "name"
    else:
        ids = template[id_col].astype(str)
        pos = pd.Index(test.sample_ids.astype(str)).get_indexer(ids)
        if np.any(pos < 0):
            missing = ids[pos < 0].tolist()
            raise AnalysisError(f"{len(missing)} of the template's {len(ids)} ids have no test prediction "
                                f"(e.g. {missing[:5]}); the runs' test predictions cover {test.n_samples} images. "
                                "Check the test folder against the sample submission, then predict again.")
        fmt = target_format(template[target_col], classes)
        values = labels[pos] if fmt == "index" else np.asarray(classes, dtype=object)[labels[pos]]
        frame = template.copy()
        frame[target_col] = [str(v) for v in values]
    out = Path(out) if out is not None else (
        resolve_workspace(workspace) / "submissions" / f"submission-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv")
    sidecar = sidecar_path_of(out)
    if sidecar == out:
        raise AnalysisError(f"The submission path {str(out)!r} must not end in .json (its record is written there).")
    record = {
        "format_version": SIDECAR_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "csv": out.name,
        "runs": [{"run_id": r.run_id, "name": r.name, "model": r.model_name, "label_smoothing": r.label_smoothing,
                  "path": str(r.path)} for r in infos],
        "folds": chosen, "views": views,
        "voting": voting, "tta": tta, "weights": None if weights is None else [float(w) for w in weights],
        "expected": _expected(infos, chosen, views, voting, tta, weights),
        "dataset": infos[0].dataset, "template": template_path, "id_column": id_col, "target_column": target_col,
        "target_format": fmt, "n_rows": int(len(frame)), "classes": classes,
    }
    atomic_write_text(out, frame.to_csv(index=False))
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    return SubmissionResult(path=out, sidecar_path=sidecar, frame=frame, record=record)
