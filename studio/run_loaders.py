"""Cached readers of the run store for the Train, Folds, Ensemble, Grad-CAM and Submit pages.

Wrappers only: every number comes from an engine call (the run store's listing and readers,
engine.analysis), cached by small arguments (a run directory and the modification time of the file
that matters), so a rerun re-reads a run only when its files changed. Long work never happens here:
training runs in its own process (engine.jobs) and these functions only read what it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from engine import runs as store


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return 0.0


def runs_table(workspace: Path) -> pd.DataFrame:
    """Every run in the workspace, newest first (the run store's listing, :func:`engine.runs.list_runs`):
    the state a person should see (a dead job is failed, an unreadable one ``damaged``) and ``error``."""
    return store.list_runs(workspace)


def run_record(run_dir: str | Path) -> store.RunRecord:
    """One run as the listing sees it (status with liveness, config, files); never raises for damage."""
    return store.read_run(run_dir)


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(run_dir: str, mtime: float) -> pd.DataFrame:
    return store.read_metrics(run_dir)


def run_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The metrics of a run (one row per fold and epoch), re-read when the file changes."""
    return _metrics(str(run_dir), _mtime(store.metrics_path(run_dir)))


def log_tail(run_dir: str | Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the job's log."""
    return store.read_log_tail(run_dir, lines)


@st.cache_data(max_entries=32, show_spinner=False)
def _config_dict(run_dir: str, mtime: float) -> dict:
    return dict(store.read_config(run_dir))


def run_config(run_dir: str | Path) -> dict:
    """The run's resolved config as a plain dict."""
    return _config_dict(str(run_dir), _mtime(store.config_path(run_dir)))


# ---------------------------------------------------------------- analysis (engine.analysis; cached per run state)


def predictions_token(run_dir: str | Path) -> float:
    """Changes whenever a prediction file of the run is written (the cache key of every analysis)."""
    return store.predictions_mtime(run_dir)


def comparable_runs(workspace: Path) -> pd.DataFrame:
    """Runs that are not damaged and have at least one finished fold (OOF predictions), newest first."""
    return store.runs_frame(r for r in store.list_run_records(workspace) if not r.damaged and r.folds("oof"))


def damaged_runs(workspace: Path) -> pd.DataFrame:
    """Runs whose status or config cannot be read: ``run_id``, ``name``, ``error`` (what is wrong)."""
    runs = runs_table(workspace)
    return runs.loc[runs["state"] == store.DAMAGED, ["run_id", "name", "error"]].reset_index(drop=True)


@st.cache_data(max_entries=16, show_spinner="Comparing the fold models...")
def fold_comparison(run_dir: str, token: float, tta: str, views: tuple[str, ...] | None):
    from engine.analysis.compare import compare_folds

    return compare_folds(run_dir, tta=tta, views=list(views) if views else None)


@st.cache_data(max_entries=16, show_spinner=False)
def oof_confusions(run_dir: str, token: float, tta: str, views: tuple[str, ...] | None) -> dict[int, object]:
    """Per fold: the OOF confusion matrix (classes x classes counts) of that fold's model."""
    from engine.analysis.compare import fold_confusions

    return fold_confusions(run_dir, views=list(views) if views else None, tta=tta)


@st.cache_data(max_entries=16, show_spinner=False)
def fold_confidences(run_dir: str, token: float, subset: str, tta: str, views: tuple[str, ...] | None) -> pd.DataFrame:
    """Per sample of ``subset`` (holdout / test): each fold model's top probability, columns ``fold<k>``."""
    from engine.analysis.compare import fold_confidences as confidences

    return confidences(run_dir, subset, views=list(views) if views else None, tta=tta)


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
    """Groups of run directories whose configs differ only in label smoothing (ascending). Only the configs
    are read: a run with a damaged prediction file is named when its group is compared."""
    from engine.analysis.compare import find_label_smoothing_groups

    return [[str(r.path) for r in g] for g in find_label_smoothing_groups([store.read_run(d) for d in run_dirs])]


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
