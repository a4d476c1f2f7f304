"""Pickers shared by the comparison pages: which run(s), which TTA views and merge mode."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.analysis.tta import TTA_MODES
from studio import run_loaders

MISSING = "–"  # what a table cell without a value shows (st.dataframe's placeholder; Streamlit's own is "None")


def require_runs(workspace: Path) -> pd.DataFrame:
    """Runs with at least one finished fold; when there is none, say what to do next and stop the page.
    A damaged run is left out, with a warning naming it and what is wrong."""
    runs = run_loaders.comparable_runs(workspace)
    for run in run_loaders.damaged_runs(workspace).itertuples(index=False):
        st.warning(f"Run **{run.name}** (`{run.run_id}`) is left out: {run.error}", icon=":material/report:")
    if runs.empty:
        all_runs = run_loaders.runs_table(workspace)
        if all_runs.empty:
            st.info("**No runs yet.** Launch a training on the **Train** page; its folds appear here as soon as "
                    "the first one finishes.", icon=":material/model_training:")
        else:
            st.info(f"{len(all_runs)} run(s) in the workspace, but no fold has finished yet (states: "
                    f"{', '.join(sorted(set(all_runs['state'])))}). Watch them on the **Train** page.",
                    icon=":material/hourglass_top:")
        st.stop()
    return runs


def run_label(runs: pd.DataFrame):
    names = runs.set_index("run_id")["name"].to_dict()
    states = runs.set_index("run_id")["state"].to_dict()
    return lambda rid: f"{names.get(rid) or rid} · {states.get(rid)} · {rid}"


def latest_study_runs(runs: pd.DataFrame) -> list[str]:
    """The newest run with the other runs of its study (``runs`` newest first, as run_loaders lists them)."""
    if runs.empty:
        return []
    study = runs["study_id"].iloc[0] if "study_id" in runs else None
    if study is None or pd.isna(study):
        return [runs["run_id"].iloc[0]]
    return list(runs.loc[runs["study_id"] == study, "run_id"])


def select_latest_study(runs: pd.DataFrame, *, key: str) -> None:
    """Before a run multiselect under ``key``: select the latest study's runs, unless the user chose others.

    The selection follows the latest study (a run that finishes its first fold joins it) for as long as it
    is the default this function set; a choice of the user's own is kept while its runs exist.
    """
    ss = st.session_state
    ids = set(runs["run_id"])
    default, remembered = latest_study_runs(runs), f"{key}_default"
    current = [r for r in ss.get(key) or [] if r in ids]
    if not current or current == [r for r in ss.get(remembered) or [] if r in ids]:
        current = default
    ss[key], ss[remembered] = current, default


def run_picker(runs: pd.DataFrame, *, key: str, label: str = "Run") -> str:
    """One run id (finished folds only are compared while a run is still training)."""
    ids = list(runs["run_id"])
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    return st.selectbox(label, ids, key=key, format_func=run_label(runs))


def tta_ui(views: list[str], *, key_prefix: str) -> tuple[str, tuple[str, ...] | None]:
    """TTA merge mode and the views merged into each model's prediction (all by default)."""
    c1, c2 = st.columns([1, 3])
    mode = c1.selectbox("TTA merge", list(TTA_MODES), key=f"{key_prefix}_tta_mode",
                        help="How the test-time views of one model are merged into its prediction.")
    chosen = c2.multiselect("TTA views merged", views, default=views, key=f"{key_prefix}_tta_views")
    if not chosen:
        st.warning("Pick at least one view; all views are used meanwhile.")
        chosen = views
    return mode, (tuple(chosen) if chosen != views else None)
