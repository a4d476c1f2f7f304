"""Review page: the training images whose given label is probably wrong (confident learning on out-of-sample
predictions), each with its probabilities, the Grad-CAM of the suggested class and its duplicates; keep,
exclude or relabel it (written to the overrides file beside the dataset spec), then train again with them."""

import streamlit as st

from engine.errors import EngineError
from studio import label_loaders, run_loaders, state
from studio.loaders import load_dataset_cached
from studio.widgets import review as ui
from studio.widgets.runs import require_runs, tta_ui

st.title("Review labels")
st.caption("Images whose given label is probably wrong, found by confident learning on each image's out-of-sample "
           "prediction (out-of-fold, and the holdout). Nothing is deleted: decisions go to an overrides file beside "
           "the dataset spec, and the next run trains with them.")
workspace = state.workspace()
runs = require_runs(workspace)
chosen = ui.runs_ui(runs)
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
run_dirs = [str(runs.set_index("run_id").at[r, "path"]) for r in chosen]
config = run_loaders.run_config(run_dirs[0])
settings = ui.settings_ui()
mode, views = tta_ui(list(config["tta_views"]), key_prefix="review")
ui.show_message()
try:
    dataset = load_dataset_cached(config["dataset"])
    found = label_loaders.label_issues(tuple(run_dirs), run_loaders.runs_token(tuple(run_dirs)), settings.method,
                                       settings.rank_by, mode, views)
    overrides = label_loaders.overrides_of(dataset.spec_path or config["dataset"])
except EngineError as e:
    st.error(str(e))
    st.stop()

ui.summary(found, overrides)
shown = ui.page_of(ui.rows_to_show(found, overrides, settings))
dups = ui.duplicates(dataset, config["dataset"], workspace, shown)
spec_path = None if dataset.spec_path is None else str(dataset.spec_path)
ui.review_list(found, shown, overrides, spec_path=spec_path, paths=ui.image_paths(dataset),
               run_dir=run_dirs[0], run_name=str(config.get("name") or chosen[0]), dups=dups)
ui.relaunch_section(run_dirs, overrides, workspace)
