"""Train page: launch K-fold training (or an Optuna search of it) in the background and watch it live.

Launch returns at once (the job is its own process, engine.jobs); the monitor below is a fragment
that polls the run directories every few seconds only while a job is queued or running.
"""

import streamlit as st

from engine.data.exclusions import exclusion_note
from engine.errors import EngineError
from engine.jobs import launch_training, launcher_for_run, list_devices
from engine.training.config import read_run_config
from studio import loaders, run_loaders, state
from studio.widgets import jobs, search
from studio.widgets.common import require_dataset
from studio.widgets.launch_backend import launcher_ui
from studio.widgets.train_form import run_config_ui

dataset = require_dataset()
workspace = state.workspace()
st.title("Train")
st.caption(f"Stratified {dataset.num_classes}-class K-fold training on **{dataset.name}** "
           f"({len(dataset.manifest):,} images). Runs are written to `{workspace / 'runs'}`.")

st.session_state.setdefault(state.TRAIN_MODE, "train")
mode = st.segmented_control("Launch", ["train", "search"], key=state.TRAIN_MODE, label_visibility="collapsed",
                            format_func={"train": "Train a config", "search": "Search hyperparameters (Optuna)"}.get)
if mode == "search":
    try:
        launcher = launcher_ui(workspace)  # the trials train there: this machine or a Ray cluster
    except EngineError as e:  # e.g. the workspace's settings.yaml is unreadable: say so, the form still works
        st.error(str(e))
        launcher = None
    search.launch_ui(dataset, workspace, list_devices(), launcher=launcher)
    search.results_ui(workspace, dataset)
else:
    try:
        launcher = launcher_ui(workspace)
        config = run_config_ui(dataset, workspace, list_devices())
        run_dirs = launch_training(config, workspace=workspace, launcher=launcher) if config is not None else None
    except EngineError as e:
        st.error(str(e))
    else:
        if run_dirs:
            st.session_state[state.TRAIN_SELECTED_RUN] = run_dirs[0].name
            st.success(f"Launched {len(run_dirs)} run(s): " + ", ".join(d.name for d in run_dirs)
                       + (" — a study sharing one split." if len(run_dirs) > 1 else "."))
            if note := exclusion_note(read_run_config(run_dirs[0]).excluded):
                st.warning(note)

# Only whether a job is live decides the polling; the fragment reads the full table itself.
# A running search counts: its next trial's run appears between two jobs.
active = bool(loaders.active_jobs(workspace)) or search.active_searches(workspace)


@st.fragment(run_every=jobs.REFRESH_SECONDS if active else None)
def monitor() -> None:
    table = run_loaders.runs_table(workspace)
    st.subheader("Runs")
    if table.empty:
        st.info("No runs yet: fill in the form above and press **Launch training**.")
        return
    jobs.runs_overview(table)
    ids = list(table["run_id"])
    if st.session_state.get(state.TRAIN_SELECTED_RUN) not in ids:
        st.session_state[state.TRAIN_SELECTED_RUN] = ids[0]
    by_id = table.set_index("run_id")
    chosen = st.selectbox("Run", ids, key=state.TRAIN_SELECTED_RUN, format_func=lambda r: f"{by_id.at[r, 'name']} · {r}")
    path = by_id.at[chosen, "path"]
    jobs.run_detail(run_loaders.run_record(path), launcher=launcher_for_run(path, workspace=workspace))
    if active and not table["state"].isin(jobs.ACTIVE).any() and not search.active_searches(workspace):
        st.rerun()  # the last job (and search) finished: redraw the page so polling stops


monitor()
