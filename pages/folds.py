"""Folds page: how the K fold models of one run compare — metrics and their spread, confusion matrices,
agreement on the holdout and test images, and the images they disagree on. Numbers come from
engine.analysis.compare_folds; the page only draws them."""

import streamlit as st

from engine.errors import EngineError
from studio import run_loaders, state
from studio.figures.compare import METRIC_LABELS, confusion_heatmap, fold_metric_bars, matrix_heatmap
from studio.loaders import load_dataset_cached
from studio.widgets.runs import require_runs, run_picker, tta_ui
from studio.widgets.samples import sample_grid, sample_paths

st.title("Folds")
runs = require_runs(state.workspace())
run_id = run_picker(runs, key=state.FOLDS_RUN)
run_dir = runs.set_index("run_id").at[run_id, "path"]
config = run_loaders.run_config(run_dir)
mode, views = tta_ui(list(config["tta_views"]), key_prefix="folds")
token = run_loaders.predictions_token(run_dir)
try:
    result = run_loaders.fold_comparison(run_dir, token, mode, views)
    confusions = run_loaders.oof_confusions(run_dir, token, mode, views)
    dataset = load_dataset_cached(config["dataset"])
except EngineError as e:
    st.error(str(e))
    st.stop()
if runs.set_index("run_id").at[run_id, "state"] != "done":
    st.warning(f"This run is not done: only its {len(result.oof)} finished fold(s) are compared.")

st.subheader("Per-fold metrics")
metric = st.segmented_control("Metric", ["accuracy", "macro_f1", "log_loss", "ece"], default="accuracy",
                              format_func=METRIC_LABELS.get, key="folds_metric") or "accuracy"
left, right = st.columns([3, 2])
left.plotly_chart(fold_metric_bars(result.oof, metric), width="stretch")
right.caption("Each fold model on its own validation fold (out-of-fold).")
right.dataframe(result.oof.round(4), hide_index=True, width="stretch")
if result.holdout is not None:
    st.caption(f"Each fold model on the holdout ({int(result.holdout['n'].iloc[0])} images), and the votes of all "
               "fold models: what averaging the folds gains.")
    st.dataframe(result.holdout.round(4), hide_index=True, width="stretch")

st.subheader("Confusion matrices (out-of-fold, row-normalized)")
cols = st.columns(min(len(confusions), 3))
for i, (fold, matrix) in enumerate(confusions.items()):
    cols[i % len(cols)].plotly_chart(confusion_heatmap(matrix, dataset.classes, title=f"fold {fold}"),
                                     width="stretch", key=f"folds_cm_{fold}")

if result.agreement:
    st.subheader("Agreement of the fold models")
    cols = st.columns(len(result.agreement))
    for col, (subset, matrix) in zip(cols, result.agreement.items(), strict=True):
        col.plotly_chart(matrix_heatmap(matrix, title=f"{subset}: share of images with the same prediction",
                                        zmin=0.0, zmax=1.0), width="stretch", key=f"folds_agree_{subset}")

    st.subheader("Images the folds disagree on")
    subset = st.radio("Images from", list(result.disagreements), horizontal=True, key="folds_dis_subset")
    dis = result.disagreements[subset]
    if dis.empty:
        st.success(f"The fold models agree on every {subset} image.")
    else:
        confidence = run_loaders.fold_confidences(run_dir, token, subset, mode, views)
        folds = [c for c in dis.columns if c.startswith("fold")]
        st.caption(f"{len(dis)} {subset} image(s) get different classes from different fold models; the first 24, "
                   "each fold's prediction with its confidence.")
        top = dis.head(24)
        captions = [("true " + str(r["label"]) + " · " if "label" in r else "")
                    + " · ".join(f"{f}: {r[f]} ({confidence.at[r['sample_id'], f]:.0%})" for f in folds)
                    for _, r in top.iterrows()]
        sample_grid(top, captions, sample_paths(dataset, subset), columns=8)
