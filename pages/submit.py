"""Submit page: write the chosen combination's test predictions in the sample-submission format, compare
its class distribution with training, download it; every submission is kept in the workspace with its
sidecar (what made it, its CV scores with intervals, and the public-leaderboard score entered for it)."""

import pandas as pd
import streamlit as st

from engine.errors import EngineError
from engine.submission import make_submission
from studio import state
from studio.figures.compare import share_comparison
from studio.loaders import load_dataset_cached
from studio.widgets.runs import require_runs
from studio.widgets.submit import expected_caption, leaderboard_section, submission_args, submission_ui

st.title("Submit")
workspace = state.workspace()
runs = require_runs(workspace)
choice = submission_ui(runs)
paths = runs.set_index("run_id")["path"].to_dict()

if choice is not None and st.button("Write submission", type="primary", icon=":material/save:", key="submit_write"):
    try:
        result = make_submission(workspace=workspace, **submission_args(choice, paths))
    except EngineError as e:
        st.error(str(e))
    else:
        st.session_state["submit_last"] = str(result.path)

last = st.session_state.get("submit_last")
if last:
    frame = pd.read_csv(last, dtype=str)
    record = pd.read_json(last.removesuffix(".csv") + ".json", typ="series")
    dataset = load_dataset_cached(record["dataset"])
    st.success(f"Written: `{last}` ({len(frame):,} rows) and its sidecar `{last.removesuffix('.csv')}.json`.")
    expected = record.get("expected") or {}
    if expected:
        st.caption(expected_caption(expected))
    left, right = st.columns([2, 3])
    left.dataframe(frame.head(200), hide_index=True, width="stretch")
    target = record["target_column"]
    values = frame[target].astype(str)
    if record.get("target_format") == "index":
        values = values.map(lambda v: dataset.classes[int(v)])
    shares = pd.DataFrame({"training": dataset.class_counts() / len(dataset.manifest),
                           "submission": values.value_counts(normalize=True).reindex(dataset.classes, fill_value=0)})
    right.plotly_chart(share_comparison(shares), width="stretch")
    st.download_button("Download submission.csv", frame.to_csv(index=False).encode(), file_name="submission.csv",
                       mime="text/csv", icon=":material/download:", key="submit_download")

st.subheader("Submissions and the public leaderboard")
leaderboard_section(workspace)
