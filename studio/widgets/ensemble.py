"""The Ensemble page's sections. Each draws one engine.analysis result; every "A vs B" carries its
95% paired-bootstrap interval, drawn grey when it crosses zero (then the gain may be noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine.analysis.metrics import confusion
from engine.analysis.voting import combine
from engine.errors import EngineError
from studio import run_loaders, state
from studio.figures.compare import (
    METRIC_LABELS,
    confusion_heatmap,
    difference_intervals,
    histogram_overlay,
    reliability_diagram,
)
from studio.widgets.runs import MISSING
from studio.widgets.samples import sample_grid

NUMBER_FORMAT = {c: st.column_config.NumberColumn(format="%.4f") for c in
                 ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier", "ece", "a", "b", "diff",
                  "diff_low", "diff_high", "temperature")}


def _interval_text(row) -> str:
    verdict = "a real difference" if row["diff_low"] > 0 or row["diff_high"] < 0 else "could be noise"
    return (f"{METRIC_LABELS.get(row['metric'], row['metric'])}: {row['diff']:+.4f} "
            f"[{row['diff_low']:+.4f}, {row['diff_high']:+.4f}] — {verdict}")


def voting_section(run_dirs: tuple[str, ...], token, tta: str, views, paths: dict[str, str]) -> None:
    """Hard vs soft voting: fold models on the holdout, or (several runs) runs on OOF."""
    options = ["holdout (fold models of the chosen runs)"] + (["oof (one member per run)"] if len(run_dirs) > 1 else [])
    choice = st.radio("Voted over", options, horizontal=True, key="ens_vote_subset")
    subset = choice.split(" ")[0]
    try:
        result = run_loaders.voting_comparison(run_dirs, token, subset, tta, views)
    except EngineError as e:
        st.info(f"Voting cannot be compared here: {e}")
        return
    st.caption(f"{len(result.members)} members voted. Soft: mean of probabilities. Hard: majority of predicted "
               "classes, ties to the lowest class index (as scikit-learn's VotingClassifier).")
    left, right = st.columns([3, 2])
    left.dataframe(result.metrics, hide_index=True, width="stretch", placeholder=MISSING, column_config=NUMBER_FORMAT)
    right.plotly_chart(difference_intervals(result.differences.assign(label=lambda f: f["metric"].map(METRIC_LABELS)),
                                            label_column="label", title="soft minus hard"),
                       width="stretch", key="ens_vote_diff")
    for _, row in result.differences.iterrows():
        right.caption(_interval_text(row))
    dis = result.disagreements
    with st.expander(f"{len(dis)} image(s) where soft and hard voting disagree"):
        if dis.empty:
            st.write("None: both votes pick the same class for every image.")
        else:
            st.dataframe(dis, hide_index=True, width="stretch", placeholder=MISSING)
            top = dis.head(12)
            sample_grid(top, [f"true {r.label} · soft {r.soft} ({r.soft_confidence:.0%}) · hard {r.hard} "
                              f"({r.hard_vote_share:.0%} of votes)" for r in top.itertuples()], paths, columns=6)


def tta_section(run_dirs: tuple[str, ...], token) -> None:
    """Gain of each TTA view and merged set over the identity view alone."""
    subset = st.radio("Measured on", ["oof", "holdout"], horizontal=True, key="ens_tta_subset",
                      help="oof: each image by the fold model that did not train on it; holdout: fold models voted.")
    try:
        result = run_loaders.tta_comparison(run_dirs, token, subset)
    except EngineError as e:
        st.info(f"TTA gains cannot be measured here: {e}")
        return
    gains = result.gains.copy()
    gains["label"] = [v if m is None or pd.isna(m) else f"{m}({v})" for v, m in zip(gains["views"], gains["mode"],
                                                                                     strict=True)]
    metric = st.segmented_control("Gain in", ["accuracy", "macro_f1"], default="accuracy", key="ens_tta_metric",
                                  format_func=METRIC_LABELS.get) or "accuracy"
    frame = gains.rename(columns={f"{metric}_gain": "diff", f"{metric}_gain_low": "diff_low",
                                  f"{metric}_gain_high": "diff_high"})
    frame = frame[frame["label"] != result.baseline_view]
    st.caption(f"Baseline: the {result.baseline_view} view alone — {METRIC_LABELS[metric]} "
               f"{result.baseline[metric]:.4f}. Single views show what each view is worth by itself.")
    st.plotly_chart(difference_intervals(frame, label_column="label",
                                         title=f"{METRIC_LABELS[metric]} gain over {result.baseline_view} alone"),
                    width="stretch", key="ens_tta_fig")
    st.dataframe(gains.drop(columns=["label"]), hide_index=True, width="stretch", placeholder=MISSING)


def label_smoothing_section(run_dirs: tuple[str, ...], token, tta: str, all_runs: pd.DataFrame) -> None:
    """Runs that differ only in label smoothing: metrics, reliability, confidence / entropy, temperature scaling."""
    all_dirs = tuple(all_runs["path"])
    groups = run_loaders.label_smoothing_groups(all_dirs, run_loaders.runs_token(all_dirs))
    if not groups:
        st.info("No runs differ only in label smoothing. On the **Train** page, type several values in "
                "*Label smoothing* (e.g. `0.0, 0.1`) to launch such a study.")
        return
    names = all_runs.set_index("path")["name"].to_dict()
    group = st.selectbox("Study", groups, key="ens_ls_group",
                         format_func=lambda g: " vs ".join(str(names.get(p, p)) for p in g))
    try:
        result = run_loaders.label_smoothing_comparison(tuple(group), run_loaders.runs_token(tuple(group)), tta)
    except EngineError as e:
        st.info(f"These runs cannot be compared: {e}")
        return
    st.caption("Temperature T is fitted per run on its OOF predictions. Scaling leaves accuracy and macro-F1 as "
               "they are and changes log loss and ECE: what still differs after it is not calibration.")
    st.dataframe(result.runs, hide_index=True, width="stretch", placeholder=MISSING, column_config=NUMBER_FORMAT)
    st.dataframe(result.metrics, hide_index=True, width="stretch", placeholder=MISSING, column_config=NUMBER_FORMAT)
    if not result.differences.empty:
        diffs = result.differences.assign(label=lambda f: "LS " + f["label_smoothing"].astype(str) + " · "
                                           + f["metric"].map(METRIC_LABELS))
        st.plotly_chart(difference_intervals(diffs, label_column="label", title="vs the lowest label smoothing (OOF)"),
                        width="stretch", key="ens_ls_diff")
    calibration = st.segmented_control("Probabilities", ["raw", "temperature"], default="raw", key="ens_ls_cal",
                                       format_func={"raw": "raw", "temperature": "after temperature scaling"}.get)
    calibration = calibration or "raw"

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        f = frame[frame["calibration"] == calibration]
        return f.assign(group="LS " + f["label_smoothing"].astype(str))

    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(reliability_diagram(pick(result.reliability), group_column="group", title="Reliability (OOF)"),
                    width="stretch", key="ens_ls_rel")
    c2.plotly_chart(histogram_overlay(pick(result.confidence_histogram), group_column="group",
                                      title="Confidence", x_title="top-class probability"),
                    width="stretch", key="ens_ls_conf")
    c3.plotly_chart(histogram_overlay(pick(result.entropy_histogram), group_column="group",
                                      title="Entropy", x_title="predictive entropy (nats)"),
                    width="stretch", key="ens_ls_ent")


def combinations_section(run_dirs: tuple[str, ...], token, tta: str, views, paths: dict[str, str],
                         classes: list[str]) -> None:
    """Ranked combinations of (run, fold) members on the holdout; pick one to see its mistakes and submit it."""
    metric = st.segmented_control("Ranked by", ["accuracy", "macro_f1"], default="accuracy", key="ens_comb_metric",
                                  format_func=METRIC_LABELS.get) or "accuracy"
    try:
        search, preds = run_loaders.ensemble_search(run_dirs, token, "holdout", tta, views, metric)
    except EngineError as e:
        st.info(f"Combinations are searched on the holdout: {e}")
        return
    names = {Path(d).name: run_loaders.run_config(d).get("name") or Path(d).name for d in run_dirs}
    short = {m.label: f"{names.get(m.run_id, m.run_id)} · fold {m.fold}" for m in preds.members}
    ranking = search.ranking.drop(columns=["member_index"])
    ranking["members"] = [[short.get(x, x) for x in row] for row in ranking["members"]]
    st.caption(f"{search.method.capitalize()} search over {preds.n_members} fold models on the holdout "
               f"({preds.n_samples} images). Best single: {short.get(search.best_single['member'])} "
               f"({search.best_single[metric]:.4f}). *gain*: {METRIC_LABELS[metric]} minus the best single's, "
               "with its 95% interval.")
    top = ranking.head(25)
    event = st.dataframe(top, hide_index=True, width="stretch", placeholder=MISSING, on_select="rerun",
                         selection_mode="single-row", key="ens_comb_table", column_config=NUMBER_FORMAT)
    picked = event.selection.rows[0] if event and event.selection.rows else 0
    row = search.ranking.iloc[picked]
    idx = list(row["member_index"])
    weights = np.asarray(row["weights"], dtype=float)
    voting = "soft" if row["voting"] == "single" else row["voting"]
    labels, _ = combine(preds.logits[idx], voting, weights)
    st.markdown(f"**Combination #{int(row['rank'])}** ({row['voting']} vote of {len(idx)} member(s)): "
                f"accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f}")
    left, right = st.columns([2, 3])
    left.plotly_chart(confusion_heatmap(confusion(preds.labels, labels, preds.n_classes), classes,
                                        title="holdout confusion (row-normalized)"), width="stretch",
                      key="ens_comb_cm")
    wrong = np.flatnonzero(labels != preds.labels)
    with right:
        st.caption(f"{len(wrong)} misclassified holdout image(s); the first 18.")
        frame = pd.DataFrame({"sample_id": preds.sample_ids[wrong[:18]]})
        sample_grid(frame, [f"true {classes[preds.labels[i]]} · predicted {classes[labels[i]]}" for i in wrong[:18]],
                    paths, columns=6)
    members = [preds.members[i] for i in idx]
    choice = {"runs": sorted({m.run_id for m in members}), "members": [[m.run_id, m.fold] for m in members],
              "weights": weights.tolist(), "voting": voting, "tta": tta, "views": list(views) if views else None,
              "expected": {"subset": "holdout", "accuracy": float(row["accuracy"]), "macro_f1": float(row["macro_f1"])}}
    if st.button("Use this combination for the submission", icon=":material/upload_file:", key="ens_use"):
        st.session_state[state.SUBMIT_CHOICE] = choice
        st.success("Saved: open the **Submit** page to write it.")



# ---------------------------------------------------------------- augmentation ↔ CV (runs that differ only in augment)


def augmentation_section(all_runs: pd.DataFrame, tta: str) -> None:
    """Runs that differ only in their pipeline: CV metrics with intervals, per-class gains, both pipelines previewed."""
    from studio import search_loaders

    all_dirs = tuple(all_runs["path"])
    groups = search_loaders.augmentation_groups(all_dirs, run_loaders.runs_token(all_dirs))
    if not groups:
        st.info("No runs differ only in their augmentation pipeline. Launch such a study from a config with "
                "`vary: {augment: [light, medium]}` (preset names or pipeline files), or an Optuna search over "
                "*Augmentation strength* alone on the **Train** page.")
        return
    names = all_runs.set_index("path")["name"].to_dict()
    group = st.selectbox("Study", groups, key=state.ENSEMBLE_AUG_GROUP,
                         format_func=lambda g: " vs ".join(str(names.get(p, Path(p).name)) for p in g))
    ids = [Path(p).name for p in group]
    if st.session_state.get(state.ENSEMBLE_AUG_BASELINE) not in ids:
        st.session_state[state.ENSEMBLE_AUG_BASELINE] = ids[0]
    by_id = {Path(p).name: names.get(p, Path(p).name) for p in group}
    baseline = st.selectbox("Compared against", ids, key=state.ENSEMBLE_AUG_BASELINE, format_func=by_id.get,
                            help="Every difference is another run minus this one (default: the fewest transforms).")
    try:
        result = search_loaders.augmentation_comparison(tuple(group), run_loaders.runs_token(tuple(group)),
                                                        baseline, tta)
    except EngineError as e:
        st.info(f"These runs cannot be compared: {e}")
        return
    runs = result.runs.assign(transforms=lambda f: f["transforms"].map(" → ".join),
                              added=lambda f: f["added"].map(", ".join), removed=lambda f: f["removed"].map(", ".join))
    st.caption("The runs share one split, so each out-of-fold image is compared with itself; the holdout rows vote "
               "each run's fold models. *added* / *removed*: transforms against the baseline's pipeline.")
    st.dataframe(runs, hide_index=True, width="stretch")
    st.dataframe(result.metrics, hide_index=True, width="stretch", column_config=NUMBER_FORMAT)
    label = by_id.get
    diffs = result.differences.assign(label=lambda f: f["run_id"].map(label) + " · " + f["metric"].map(METRIC_LABELS))
    st.plotly_chart(difference_intervals(diffs, label_column="label",
                                         title=f"CV (OOF) difference vs {label(baseline)}"),
                    width="stretch", key="ens_aug_diff")
    for _, row in result.differences.iterrows():
        st.caption(f"{label(row['run_id'])} — {_interval_text(row)}")
    others = [r for r in ids if r != baseline]
    other = others[0] if len(others) == 1 else st.selectbox("Per class and preview of", others, format_func=label,
                                                            key="ens_aug_other")
    per_class = result.per_class[result.per_class["run_id"] == other]
    left, right = st.columns([3, 2])
    left.plotly_chart(difference_intervals(
        per_class.assign(label=lambda f: "class " + f["class"].astype(str) + " (+" + f["fixed"].astype(str) + " / −"
                         + f["broken"].astype(str) + ")"),
        label_column="label", title=f"Recall gain per class: {label(other)} vs {label(baseline)} (OOF)"),
        width="stretch", key="ens_aug_classes")
    right.caption("+fixed: images the baseline got wrong and this pipeline right; −broken: the reverse.")
    right.dataframe(per_class.drop(columns=["run_id", "augment"]), hide_index=True, width="stretch",
                    column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                   ("recall_baseline", "recall", "diff", "diff_low", "diff_high", "f1_baseline", "f1")})
    pipelines_side_by_side(result, [baseline, other], label, run_loaders.run_config(group[0])["dataset"])


def pipelines_side_by_side(result, run_ids: list[str], label, dataset_path: str) -> None:
    """The Augmentation lab's preview of each pipeline, on the same images of the runs' dataset, same seed."""
    from engine.augment import preview_pipeline
    from studio.loaders import load_dataset_cached
    from studio.widgets import augment as aug

    try:
        dataset = load_dataset_cached(dataset_path)
    except EngineError as e:
        st.info(f"The runs' dataset cannot be opened for the preview: {e}")
        return
    st.markdown("**The two pipelines on the same images** (the same seed: what differs is the pipeline)")
    seed = st.number_input("Preview seed", 0, 10_000, 0, key="ens_aug_seed")
    images, captions = aug.load_images(aug.sample_paths(dataset, 2, int(seed)))
    for col, run_id in zip(st.columns(len(run_ids)), run_ids, strict=True):
        with col:
            row = result.runs.set_index("run_id").loc[run_id]
            st.markdown(f"**{label(run_id)}** — `{row['augment']}`")
            try:
                rows = preview_pipeline(result.specs[run_id], images, draws=2, seed=int(seed))
            except EngineError as e:
                st.error(str(e))
                continue
            aug.preview_grid(rows, captions, one_image_mode=False)
