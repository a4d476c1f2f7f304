"""Ensemble page: hard vs soft voting, TTA gains, label smoothing, augmentation, and the best combinations — each
"A vs B" with its paired-bootstrap interval. Numbers come from engine.analysis; the page only draws."""

import streamlit as st

from engine.errors import EngineError
from studio import run_loaders, state
from studio.loaders import load_dataset_cached
from studio.widgets import ensemble
from studio.widgets.review import overrides_comparison_section
from studio.widgets.runs import require_runs, run_label, select_latest_study, tta_ui
from studio.widgets.samples import sample_paths

st.title("Ensemble")
runs = require_runs(state.workspace())
ids = list(runs["run_id"])
select_latest_study(runs, key=state.ENSEMBLE_RUNS)
chosen = st.multiselect("Runs", ids, key=state.ENSEMBLE_RUNS, format_func=run_label(runs),
                        help="Runs of one study share a split: their OOF predictions line up sample for sample.")
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
by_id = runs.set_index("run_id")
run_dirs = tuple(by_id.at[r, "path"] for r in chosen)
config = run_loaders.run_config(run_dirs[0])
try:
    dataset = load_dataset_cached(config["dataset"])
except EngineError as e:
    st.error(f"The run's dataset cannot be opened: {e}")
    st.stop()
paths = sample_paths(dataset, "holdout")  # voting and combinations show holdout / OOF images: training images
mode, views = tta_ui(list(config["tta_views"]), key_prefix="ens")
token = run_loaders.runs_token(run_dirs)

voting_tab, tta_tab, ls_tab, aug_tab, comb_tab, ovr_tab = st.tabs(
    ["Hard vs soft voting", "TTA gains", "Label smoothing", "Augmentation", "Combinations", "Label overrides"])
with voting_tab:
    ensemble.voting_section(run_dirs, token, mode, views, paths)
with tta_tab:
    ensemble.tta_section(run_dirs, token)
with ls_tab:
    ensemble.label_smoothing_section(run_dirs, token, mode, runs)
with aug_tab:
    ensemble.augmentation_section(runs, mode)
with comb_tab:
    ensemble.combinations_section(run_dirs, token, mode, views, paths, dataset.classes)
with ovr_tab:
    overrides_comparison_section(runs, mode)
