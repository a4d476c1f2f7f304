"""Cached readers of the run store for the Train, Folds, Ensemble, Grad-CAM and Submit pages.

Keyed by small arguments (a run directory and the modification time of the file that matters), so a
rerun re-reads a run only when its files changed. Long work never happens here: training runs in its
own process (engine.jobs) and these functions only read what it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.jobs import effective_status
from engine.runs import store


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return 0.0


def runs_table(workspace: Path) -> pd.DataFrame:
    """Every run in the workspace, newest first, with the state a person should see (a dead job is failed)."""
    runs = store.list_runs(workspace)
    if runs.empty:
        return runs
    states = []
    for path in runs["path"]:
        try:
            states.append(effective_status(path))
        except Exception:  # a half-written run directory must not break the list
            states.append({"state": "failed", "progress": 0.0, "error": "status.json unreadable"})
    runs = runs.copy()
    runs["state"] = [s.get("state") for s in states]
    runs["progress"] = [float(s.get("progress") or 0.0) for s in states]
    runs["error"] = [s.get("error") for s in states]
    return runs


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(run_dir: str, mtime: float) -> pd.DataFrame:
    return store.read_metrics(run_dir)


def run_metrics(run_dir: str | Path) -> pd.DataFrame:
    """metrics.csv of a run (one row per fold and epoch), re-read when the file changes."""
    return _metrics(str(run_dir), _mtime(Path(run_dir) / "metrics.csv"))


def log_tail(run_dir: str | Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the job's log (read from the end, so a long log costs nothing)."""
    path = Path(run_dir) / "train.log"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64_000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@st.cache_data(max_entries=32, show_spinner=False)
def _config_dict(run_dir: str, mtime: float) -> dict:
    return store.read_config(run_dir).model_dump(mode="json")


def run_config(run_dir: str | Path) -> dict:
    """The run's resolved config as a plain dict."""
    return _config_dict(str(run_dir), _mtime(Path(run_dir) / "config.yaml"))


# ---------------------------------------------------------------- analysis (engine.analysis; cached per run state)


def predictions_token(run_dir: str | Path) -> float:
    """Changes whenever a prediction file of the run is written (the cache key of every analysis)."""
    pred = Path(run_dir) / "predictions"
    try:
        return max((p.stat().st_mtime_ns for p in pred.iterdir()), default=0) / 1e9
    except OSError:
        return 0.0


def comparable_runs(workspace: Path) -> pd.DataFrame:
    """Runs that have at least one finished fold (prediction files), newest first."""
    runs = runs_table(workspace)
    if runs.empty:
        return runs
    has = [any((Path(p) / "predictions").glob("fold*_oof.parquet")) for p in runs["path"]]
    return runs[has].reset_index(drop=True)


@st.cache_data(max_entries=16, show_spinner="Comparing the fold models...")
def fold_comparison(run_dir: str, token: float, tta: str, views: tuple[str, ...] | None):
    from engine.analysis.compare import compare_folds

    return compare_folds(run_dir, tta=tta, views=list(views) if views else None)


@st.cache_data(max_entries=16, show_spinner=False)
def oof_confusions(run_dir: str, token: float, tta: str, views: tuple[str, ...] | None) -> dict[int, object]:
    """Per fold: the OOF confusion matrix (classes x classes counts) of that fold's model."""
    from engine.analysis.compare import merged
    from engine.analysis.load import load_predictions
    from engine.analysis.metrics import confusion, predict_labels

    preds = merged(load_predictions(run_dir, "oof", views=list(views) if views else None),
                   list(views) if views else None, tta)
    labels = predict_labels(preds.proba()[0])
    return {int(f): confusion(preds.labels[preds.fold_of == f], labels[preds.fold_of == f], preds.n_classes)
            for f in sorted(set(preds.fold_of.tolist()))}


@st.cache_data(max_entries=16, show_spinner=False)
def fold_confidences(run_dir: str, token: float, subset: str, tta: str, views: tuple[str, ...] | None) -> pd.DataFrame:
    """Per sample of ``subset`` (holdout / test): each fold model's top probability, columns ``fold<k>``."""
    from engine.analysis.compare import merged
    from engine.analysis.load import load_predictions

    preds = merged(load_predictions(run_dir, subset, views=list(views) if views else None),
                   list(views) if views else None, tta)
    top = preds.proba().max(axis=2)
    return pd.DataFrame({f"fold{m.fold}": top[i] for i, m in enumerate(preds.members)},
                        index=pd.Index(preds.sample_ids, name="sample_id"))


def runs_token(run_dirs: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(predictions_token(d) for d in run_dirs)


@st.cache_data(max_entries=16, show_spinner="Comparing hard and soft voting...")
def voting_comparison(run_dirs: tuple[str, ...], token: tuple[float, ...], subset: str, tta: str,
                      views: tuple[str, ...] | None):
    """Soft vs hard voting: over the fold models of the runs on the holdout, or over the runs on OOF."""
    from engine.analysis.compare import compare_voting, merged
    from engine.analysis.load import load_predictions

    v = list(views) if views else None
    return compare_voting(merged(load_predictions(list(run_dirs), subset, views=v), v, tta))


@st.cache_data(max_entries=16, show_spinner="Measuring TTA gains...")
def tta_comparison(run_dirs: tuple[str, ...], token: tuple[float, ...], subset: str):
    from engine.analysis.compare import compare_tta

    return compare_tta(list(run_dirs), subset=subset)


@st.cache_data(max_entries=16, show_spinner=False)
def label_smoothing_groups(run_dirs: tuple[str, ...], token: tuple[float, ...]) -> list[list[str]]:
    """Groups of run directories whose configs differ only in label smoothing (ascending)."""
    from engine.analysis.compare import find_label_smoothing_groups
    from engine.analysis.load import open_runs

    return [[str(r.path) for r in g] for g in find_label_smoothing_groups(open_runs(list(run_dirs)))]


@st.cache_data(max_entries=8, show_spinner="Comparing label smoothing (temperature scaling on OOF)...")
def label_smoothing_comparison(run_dirs: tuple[str, ...], token: tuple[float, ...], tta: str):
    from engine.analysis.compare import compare_label_smoothing

    return compare_label_smoothing(list(run_dirs), tta=tta)


@st.cache_data(max_entries=8, show_spinner="Searching ensemble combinations...")
def ensemble_search(run_dirs: tuple[str, ...], token: tuple[float, ...], subset: str, tta: str,
                    views: tuple[str, ...] | None, metric: str):
    """Ranked combinations of (run, fold) members (views merged with ``tta``), and the prediction set they index."""
    from engine.analysis.compare import merged
    from engine.analysis.ensemble import search_ensembles
    from engine.analysis.load import load_predictions

    v = list(views) if views else None
    preds = merged(load_predictions(list(run_dirs), subset, views=v), v, tta)
    return search_ensembles(preds, metric=metric), preds
