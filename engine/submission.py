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

from engine.analysis.bootstrap import bootstrap_interval
from engine.analysis.load import PredictionSet, RunInfo, load_predictions, open_runs
from engine.analysis.metrics import score
from engine.analysis.tta import check_tta_mode
from engine.analysis.voting import check_voting, combine
from engine.errors import AnalysisError
from engine.io import atomic_write_text
from engine.runs import predictions_path
from engine.workspace import resolve_workspace

SIDECAR_VERSION = 2  # 2: cv (holdout and OOF, with bootstrap intervals) and leaderboard
BOOTSTRAP_RESAMPLES = 1000


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


INTERVAL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")  # also the metrics an LB score may use
HIGHER_IS_BETTER = {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "log_loss": False}


def _scored(preds: PredictionSet, views, voting: str, tta: str, weights, basis: str) -> dict[str, Any]:
    """The combination's metrics on a labelled subset, each with its 95% bootstrap interval (seeded)."""
    labels, proba = combine(preds.merge_tta(tta, views).logits, voting, weights)
    metrics = score(preds.labels, proba=proba, y_pred=labels)
    keep = ("accuracy", "balanced_accuracy", "macro_f1") + (("log_loss", "ece") if proba is not None else ())
    intervals = {}
    for metric in INTERVAL_METRICS:
        if metric in keep:
            _, low, high = bootstrap_interval(preds.labels, labels if proba is None or metric != "log_loss" else proba,
                                              metric=metric, n_classes=preds.n_classes, n_resamples=BOOTSTRAP_RESAMPLES,
                                              seed=0)
            intervals[metric] = [low, high]
    return {"subset": preds.subset, "basis": basis, "n": int(preds.n_samples), **{k: float(metrics[k]) for k in keep},
            "intervals": intervals, "confidence": 0.95, "n_resamples": BOOTSTRAP_RESAMPLES}


def _cv_scores(runs: list[RunInfo], folds: list[int], views, voting: str, tta: str, weights) -> dict[str, Any]:
    """The combination's cross-validation scores: ``holdout`` (fold models voted, as submitted) and ``oof`` (each
    sample by one fold model per run), each None when the runs lack it, and ``notes`` saying why."""
    out: dict[str, Any] = {"holdout": None, "oof": None, "notes": []}
    try:
        holdout = load_predictions(runs, "holdout", folds=folds, views=views)
    except AnalysisError as e:
        out["notes"].append(f"holdout: {e}")
    else:
        if holdout.n_samples:
            out["holdout"] = _scored(holdout, views, voting, tta, weights,
                                     "every chosen fold model on the labelled holdout, combined as submitted")
        else:
            out["notes"].append("holdout: the runs' split has no holdout (split.holdout_fraction 0).")
    try:
        oof = load_predictions(runs, "oof", folds=folds, views=views)
    except AnalysisError as e:
        out["notes"].append(f"oof: {e}")
        return out
    basis = "out-of-fold: each sample by one fold model per run (the fold ensemble itself is not measured)"
    if weights is not None:  # weights are per (run, fold); OOF has one member per run
        weights, basis = None, basis + "; equal run weights"
    out["oof"] = _scored(oof, views, voting, tta, weights, basis)
    return out


def _expected(cv: dict[str, Any]) -> dict[str, Any] | None:
    """The score a submission is expected to get: the holdout's, else OOF's — then saying why (never silently)."""
    if cv["holdout"] is not None:
        return cv["holdout"]
    if cv["oof"] is None:
        return None
    why = "; ".join(n for n in cv["notes"] if n.startswith("holdout:")) or "holdout: not available."
    return {**cv["oof"], "fallback": f"OOF instead of the holdout, which could not be scored ({why})"}


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
    cv = _cv_scores(infos, chosen, views, voting, tta, weights)
    record = {
        "format_version": SIDECAR_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "csv": out.name,
        "runs": [{"run_id": r.run_id, "name": r.name, "model": r.model_name, "label_smoothing": r.label_smoothing,
                  "path": str(r.path)} for r in infos],
        "folds": chosen, "views": views,
        "voting": voting, "tta": tta, "weights": None if weights is None else [float(w) for w in weights],
        "expected": _expected(cv), "cv": cv, "leaderboard": None,
        "dataset": infos[0].dataset, "template": template_path, "id_column": id_col, "target_column": target_col,
        "target_format": fmt, "n_rows": int(len(frame)), "classes": classes,
    }
    atomic_write_text(out, frame.to_csv(index=False))
    atomic_write_text(sidecar, json.dumps(record, indent=2) + "\n")
    return SubmissionResult(path=out, sidecar_path=sidecar, frame=frame, record=record)


# ---------------------------------------------------------------- the public leaderboard (CV <-> LB)


def submissions_dir(workspace: str | Path | None = None) -> Path:
    return resolve_workspace(workspace) / "submissions"


def find_submission(submission: str | Path, *, workspace: str | Path | None = None) -> Path:
    """The sidecar JSON of a submission given by id (the CSV's stem; a unique prefix is enough), CSV or JSON path."""
    as_path = Path(submission)
    if as_path.suffix in (".csv", ".json") and as_path.is_file():
        return sidecar_path_of(as_path)
    root = submissions_dir(workspace)
    exact = root / f"{submission}.json"
    if exact.is_file():
        return exact
    matches = sorted(root.glob(f"{submission}*.json"))
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.stem for p in sorted(root.glob("*.json"))[-5:]) or "none yet"
    what = f"is ambiguous ({len(matches)} submissions start with it)" if matches else "matches no submission"
    raise AnalysisError(f"Submission id {str(submission)!r} {what} in {str(root)!r} (latest: {known}); "
                        "python -m engine submissions lists them.")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AnalysisError(f"Submission record {str(path)!r} cannot be read: {e}") from None
    if not isinstance(record, dict):
        raise AnalysisError(f"Submission record {str(path)!r} is not a JSON object.")
    return record


def set_leaderboard_score(submission: str | Path, score_value: float | None, *, metric: str | None = None,
                          workspace: str | Path | None = None) -> dict[str, Any]:
    """Store the public-leaderboard score a submission got in its sidecar (None clears it); returns the record.

    ``metric``: what the leaderboard measures, one of :data:`INTERVAL_METRICS` (default: the one set before,
    else ``accuracy``) — the CV score it is compared with is the same metric.
    """
    path = find_submission(submission, workspace=workspace)
    record = read_sidecar(path)
    if score_value is None:
        record["leaderboard"] = None
    else:
        metric = metric or (record.get("leaderboard") or {}).get("metric") or "accuracy"
        if metric not in INTERVAL_METRICS:
            raise AnalysisError(f"The 'metric' parameter must be a str among {list(INTERVAL_METRICS)} (the CV scores a "
                                f"submission records). Got {metric!r} instead.")
        value = float(score_value)
        if not np.isfinite(value) or (HIGHER_IS_BETTER[metric] and not 0.0 <= value <= 1.0) or value < 0:
            allowed = "between 0 and 1" if HIGHER_IS_BETTER[metric] else "a non-negative number"
            raise AnalysisError(f"The leaderboard score for {metric} must be {allowed}. Got {score_value!r} instead.")
        record["leaderboard"] = {"score": value, "metric": metric,
                                 "entered_at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def _scored_subset(record: dict[str, Any], subset: str) -> dict[str, Any]:
    scored = (record.get("cv") or {}).get(subset)
    if scored is None and "cv" not in record and (record.get("expected") or {}).get("subset") == subset:
        scored = record["expected"]  # a format-1 sidecar has only its expected score
    return scored or {}


def subset_score(record: dict[str, Any], subset: str, metric: str) -> float | None:
    """A sidecar's CV ``metric`` on ``subset`` (holdout / oof); None when it was not recorded."""
    value = _scored_subset(record, subset).get(metric)
    return None if value is None else float(value)


def subset_interval(record: dict[str, Any], subset: str, metric: str) -> tuple[float, float] | tuple[None, None]:
    """The 95% bootstrap interval of that score; ``(None, None)`` for a sidecar written before intervals."""
    interval = (_scored_subset(record, subset).get("intervals") or {}).get(metric)
    return (float(interval[0]), float(interval[1])) if interval else (None, None)


def leaderboard_check(record: dict[str, Any]) -> dict[str, Any]:
    """How a submission's LB score sits against its CV score in the same metric.

    ``flag``: ``outside`` (LB outside the CV score's 95% bootstrap interval: leakage between folds, or a
    test set unlike the training data), ``inside``, ``no interval`` (a sidecar written before intervals
    were recorded: write the submission again), ``no cv`` or ``no lb``. ``message`` says it in words.
    """
    lb = record.get("leaderboard") or {}
    metric = lb.get("metric") or "accuracy"
    expected = record.get("expected") or {}
    out = {"metric": metric, "lb": lb.get("score"), "cv": expected.get(metric),
           "cv_subset": expected.get("subset"), "cv_holdout": subset_score(record, "holdout", metric),
           "cv_oof": subset_score(record, "oof", metric), "cv_low": None, "cv_high": None}
    interval = (expected.get("intervals") or {}).get(metric)
    if interval:
        out["cv_low"], out["cv_high"] = interval
    if out["lb"] is None:
        return {**out, "flag": "no lb", "message": "No leaderboard score entered yet."}
    if out["cv"] is None:
        return {**out, "flag": "no cv", "message": f"The record has no CV {metric} to compare with."}
    diff = out["lb"] - out["cv"]
    if not interval:
        return {**out, "flag": "no interval", "message": (
            f"LB {out['lb']:.4f} vs CV {out['cv']:.4f} ({diff:+.4f}); this sidecar was written before bootstrap "
            "intervals were recorded (format_version 1), so whether that is noise is unknown: write it again.")}
    low, high = interval
    where = f"CV {out['cv']:.4f} [{low:.4f}, {high:.4f}] on the {out['cv_subset']} (n={expected.get('n')})"
    if low <= out["lb"] <= high:
        return {**out, "flag": "inside", "message": f"LB {out['lb']:.4f} lies inside {where}."}
    better = (diff > 0) == HIGHER_IS_BETTER.get(metric, True)
    why = ("the LB is better than CV can explain: check for a test set easier than or unlike training" if better else
           "the LB is worse than CV can explain: leakage between folds (duplicates, groups) or a shifted test set")
    return {**out, "flag": "outside", "message": f"LB {out['lb']:.4f} lies outside {where} ({diff:+.4f}): {why}."}


SUBMISSION_COLUMNS = ["id", "created_at", "runs", "voting", "tta", "expected_on", "holdout_accuracy", "oof_accuracy",
                      "lb_metric", "lb", "cv", "cv_low", "cv_high", "cv_holdout", "cv_holdout_low", "cv_holdout_high",
                      "cv_oof", "cv_oof_low", "cv_oof_high", "flag", "message", "csv"]


def list_submissions(workspace: str | Path | None = None) -> pd.DataFrame:
    """One row per submission in ``<workspace>/submissions``, newest first (``SUBMISSION_COLUMNS``).

    ``cv*`` columns are in the leaderboard's metric (accuracy until one is entered): ``cv`` the expected score
    (holdout, else OOF) with its interval ``cv_low`` / ``cv_high``, ``cv_holdout`` / ``cv_oof`` each subset's
    with theirs (None in a sidecar written before intervals were recorded); ``flag`` and ``message``
    come from :func:`leaderboard_check`. A sidecar that cannot be read is listed with the reason.
    """
    rows = []
    for sidecar in sorted(submissions_dir(workspace).glob("*.json")):
        try:
            record = read_sidecar(sidecar)
        except AnalysisError as e:
            rows.append({"id": sidecar.stem, "flag": "unreadable", "message": str(e)})
            continue
        check = leaderboard_check(record)
        rows.append({
            "id": sidecar.stem, "created_at": record.get("created_at"),
            "runs": ", ".join(str(r.get("name") or r.get("run_id")) for r in record.get("runs", [])),
            "voting": record.get("voting"), "tta": record.get("tta"),
            "expected_on": (record.get("expected") or {}).get("subset"),
            "holdout_accuracy": subset_score(record, "holdout", "accuracy"),
            "oof_accuracy": subset_score(record, "oof", "accuracy"),
            "lb_metric": check["metric"], "lb": check["lb"], "cv": check["cv"], "cv_low": check["cv_low"],
            "cv_high": check["cv_high"], "cv_holdout": check["cv_holdout"], "cv_oof": check["cv_oof"],
            **dict(zip(("cv_holdout_low", "cv_holdout_high"), subset_interval(record, "holdout", check["metric"]),
                       strict=True)),
            **dict(zip(("cv_oof_low", "cv_oof_high"), subset_interval(record, "oof", check["metric"]), strict=True)),
            "flag": check["flag"], "message": check["message"],
            "csv": str(sidecar.parent / str(record.get("csv") or sidecar.with_suffix(".csv").name)),
        })
    frame = pd.DataFrame(rows, columns=SUBMISSION_COLUMNS)
    return frame.sort_values(["created_at", "id"], ascending=False, na_position="last", ignore_index=True)


def cv_lb_correlation(submissions: pd.DataFrame, metric: str | None = None) -> dict[str, dict[str, Any]]:
    """Pearson correlation of LB with CV over the submissions that have both, per CV subset.

    Returns ``{"holdout": {"r", "n", "metric"}, "oof": {...}}``; ``r`` is None with fewer than 3 pairs
    (two points always lie on a line) or when a side does not vary.
    """
    rows = submissions[submissions["lb"].notna()]
    if metric is None:
        metric = rows["lb_metric"].mode().iloc[0] if len(rows) else "accuracy"
    rows = rows[rows["lb_metric"] == metric]
    out = {}
    for subset in ("holdout", "oof"):
        pairs = rows[["lb", f"cv_{subset}"]].dropna().astype(float)
        r = None
        if len(pairs) >= 3 and pairs.std().gt(0).all():
            r = float(np.corrcoef(pairs["lb"], pairs[f"cv_{subset}"])[0, 1])
        out[subset] = {"r": r, "n": int(len(pairs)), "metric": metric}
    return out
