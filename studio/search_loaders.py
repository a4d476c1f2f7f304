"""Cached readers for the search results (Train page) and the augmentation comparison (Ensemble page).

Keyed by small arguments: a search's directory plus a token that moves when its status changes, or
run directories plus their prediction tokens. The search itself runs in its own process
(engine.search); these functions only read the Optuna database and the run store.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st


def search_token(search_dir: str | Path) -> tuple:
    """Moves when a trial starts or ends, the search changes state, or the running trial reports an epoch
    (not at every heartbeat: Optuna's figures are redrawn only when there is something new)."""
    from engine.runs.layout import metrics_path
    from engine.search import effective_search_status
    from engine.workspace import runs_dir

    try:
        status = effective_search_status(search_dir)
    except Exception:  # noqa: BLE001 - being written: the next poll
        return ()
    run = status.get("current_run_id")
    metrics = metrics_path(runs_dir(Path(search_dir).parent.parent) / str(run))
    try:
        epoch_mark = os.stat(metrics).st_mtime_ns if run else 0
    except OSError:
        epoch_mark = 0
    return (status.get("state"), status.get("trials_done"), status.get("current_trial"), epoch_mark)


def searches_table(workspace: Path) -> pd.DataFrame:
    from engine.search import list_searches

    return pd.DataFrame(list_searches(workspace))


@st.cache_data(max_entries=16, show_spinner=False)
def trials_table(search_dir: str, token: tuple) -> pd.DataFrame:
    from engine.search import search_trials

    return search_trials(search_dir)


@st.cache_data(max_entries=8, show_spinner="Drawing Optuna's figures...")
def search_figures(search_dir: str, token: tuple) -> dict:
    from engine.search import load_study, read_search
    from studio.figures.compare import METRIC_LABELS
    from studio.figures.search import search_figures as build

    record = read_search(search_dir)
    study = load_study(record.search_id, workspace=record.workspace)
    label = f"{record.search.evaluate_on} {METRIC_LABELS.get(record.search.metric, record.search.metric)}"
    return build(study, metric_label=label)


# ---------------------------------------------------------------- augmentation comparison (Ensemble page)


@st.cache_data(max_entries=16, show_spinner=False)
def augmentation_groups(run_dirs: tuple[str, ...], token: tuple[float, ...]) -> list[list[str]]:
    """Groups of run directories whose configs differ only in their augmentation pipeline. Only the configs
    are read: a run with a damaged prediction file is named when its group is compared."""
    from engine.analysis.compare import find_augmentation_groups
    from engine.runs import read_run

    return [[str(r.path) for r in g] for g in find_augmentation_groups([read_run(d) for d in run_dirs])]


@st.cache_data(max_entries=8, show_spinner="Comparing the augmentation pipelines (bootstrap on OOF)...")
def augmentation_comparison(run_dirs: tuple[str, ...], token: tuple[float, ...], baseline: str, tta: str):
    from engine.analysis.compare import compare_augmentation

    return compare_augmentation(list(run_dirs), baseline=baseline, tta=tta)
