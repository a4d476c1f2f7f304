"""Label review: the Review page's widget groups and cards, the Data page's overrides note and the Ensemble
page's "Label overrides" tab. ``*_ui()`` functions return the user's choices; session-state keys are
``studio.state.REVIEW_*``. Decisions are written to the dataset's overrides file (engine.data.overrides) by
button callbacks, so the rerun they trigger already sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine.analysis.label_issues import METHODS, RANK_BY, LabelIssues
from engine.data import Dataset
from engine.data.overrides import LabelOverrides, Override, remove_override, set_override
from engine.errors import EngineError
from studio import cam_loaders, label_loaders, run_loaders, state
from studio.figures.cam import cam_tile
from studio.figures.compare import METRIC_LABELS, difference_intervals
from studio.figures.review import confidence_bars, noise_matrix_figure
from studio.loaders import image_format, thumbnail
from studio.widgets.runs import run_label, select_latest_study

PER_PAGE = 8
TILE = 128
RELAUNCH_SUFFIX = " +overrides"
METHOD_LABELS = {
    "prune_by_count": "As many as the estimated errors (prune by count)",
    "prune_by_noise_rate": "Prune by noise rate",
    "prune_by_class": "Prune by class",
    "both": "Noise rate and class (both)",
    "confident_joint": "Off-diagonal of the confident joint",
    "argmax": "Predicted class differs (no confident learning)",
}
RANK_LABELS = {"self_confidence": "self-confidence", "normalized_margin": "normalized margin"}
ACTION_TEXT = {"keep": ":green[✓ kept: the label is right]", "exclude": ":red[excluded from training]"}


@dataclass(frozen=True)
class ReviewSettings:
    method: str
    rank_by: str
    show: str  # "flagged" | "all"
    hide_decided: bool


# ---------------------------------------------------------------- choices


def runs_ui(runs: pd.DataFrame) -> list[str]:
    """Run ids to review (default: the latest study, or the newest run); runs of one study are averaged."""
    ids = list(runs["run_id"])
    select_latest_study(runs, key=state.REVIEW_RUNS)
    return st.multiselect("Runs", ids, key=state.REVIEW_RUNS, format_func=run_label(runs),
                          help="The out-of-sample predictions of these runs are averaged (runs of one study share a "
                               "split, so they line up sample for sample).")


def settings_ui() -> ReviewSettings:
    c1, c2, c3, c4 = st.columns([1.6, 1, 1, 1], vertical_alignment="bottom")
    method = c1.selectbox("Flag", METHODS, format_func=METHOD_LABELS.get, key=state.REVIEW_METHOD,
                          help="Confident learning estimates how many given labels are wrong (the joint of given and "
                               "true labels); *prune by count* flags that many, lowest first. The others are the "
                               "paper's pruning rules; the last one is the plain rule it improves on.")
    rank_by = c2.selectbox("Rank by", RANK_BY, format_func=RANK_LABELS.get, key=state.REVIEW_RANK_BY,
                           help="Self-confidence: the probability of the given label. Normalized margin: that minus "
                                "the best other class's.")
    show = c3.segmented_control("Show", ["flagged", "all"], default="flagged", key=state.REVIEW_SHOW,
                                format_func={"flagged": "flagged", "all": "every sample"}.get) or "flagged"
    hide = c4.toggle("Hide decided", key=state.REVIEW_HIDE_DECIDED,
                     help="Leave out the images you already kept, excluded or relabelled.")
    return ReviewSettings(method, rank_by, show, bool(hide))


# ---------------------------------------------------------------- summary


def summary(found: LabelIssues, overrides: LabelOverrides) -> None:
    counts = overrides.counts()
    cols = st.columns(4)
    cols[0].metric("Samples reviewed", f"{len(found.issues):,}", border=True,
                   help=f"Out-of-sample predictions of {' + '.join(found.subsets)}.")
    cols[1].metric("Flagged", f"{found.n_flagged:,}", border=True,
                   help="Images whose given label is probably wrong.")
    cols[2].metric("Estimated wrong labels", f"{found.noise_rate:.1%}", border=True,
                   help="The off-diagonal share of the estimated joint of given and true labels.")
    cols[3].metric("Decisions", f"{sum(counts.values()):,}", border=True,
                   help=f"{counts['exclude']} excluded, {counts['relabel']} relabelled, {counts['keep']} kept.")
    with st.expander("Estimated noise matrix and thresholds"):
        left, right = st.columns([3, 2])
        left.plotly_chart(noise_matrix_figure(found.noise_matrix), width="stretch", key="review_noise")
        thresholds = pd.DataFrame({"class": found.classes, "threshold": found.thresholds,
                                   "flagged as given": found.flagged()["given"].value_counts()
                                   .reindex(found.classes, fill_value=0).to_numpy()})
        right.dataframe(thresholds, hide_index=True, width="stretch",
                        column_config={"threshold": st.column_config.NumberColumn(format="%.3f")})
        right.caption("Threshold: the mean probability the model gives a class on the images labelled with it. "
                      "Column j of the matrix: where images of true class j went (their given labels).")
        for note in found.notes:
            st.caption(note)


def rows_to_show(found: LabelIssues, overrides: LabelOverrides, settings: ReviewSettings) -> pd.DataFrame:
    """The ranked rows the settings keep, with the row's position in ``found.proba`` (``row``)."""
    rows = found.issues.assign(row=np.arange(len(found.issues)))
    if settings.show == "flagged":
        rows = rows[rows["flagged"]]
    if settings.hide_decided and len(overrides):
        rows = rows[~rows["sample_id"].isin(set(overrides.entries))]
    return rows.reset_index(drop=True)


def page_of(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the current page, with Previous / Next buttons (empty with a message when there are none)."""
    if rows.empty:
        st.success("Nothing to review with these settings: every flagged image has a decision, or none is flagged.")
        return rows
    pages = max(1, -(-len(rows) // PER_PAGE))
    page = min(max(int(st.session_state.get(state.REVIEW_PAGE, 1)), 1), pages)
    c1, c2, c3 = st.columns([1, 3, 1], vertical_alignment="center")
    if c1.button("Previous", icon=":material/chevron_left:", disabled=page <= 1, key="review_prev"):
        page -= 1
    if c3.button("Next", icon=":material/chevron_right:", disabled=page >= pages, key="review_next"):
        page += 1
    st.session_state[state.REVIEW_PAGE] = page
    c2.caption(f"Page {page} of {pages} · {len(rows):,} image(s)")
    return rows.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]


# ---------------------------------------------------------------- cards


def image_paths(dataset: Dataset) -> dict[str, str]:
    """sample_id -> image path of every training image, excluded ones included (a run may have scored them)."""
    paths = dict(zip(dataset.manifest["sample_id"].astype(str), dataset.manifest["path"], strict=True))
    if dataset.overrides is not None:
        excluded = dataset.overrides.excluded
        paths.update(zip(excluded["sample_id"].astype(str), excluded["path"], strict=True))
    return paths


def cam_tiles(rows: pd.DataFrame, run_dir: str, run_name: str, paths: dict[str, str]) -> dict[str, np.ndarray | str]:
    """Grad-CAM of the suggested class per sample (a tile, or why there is none), by the fold model that scored it
    out of sample (fold 0 for a holdout image)."""
    out: dict[str, np.ndarray | str] = {}
    rows = rows[rows["sample_id"].isin(set(paths))]
    folds = rows["fold"].fillna(0).astype(int)
    for fold, part in rows.groupby(folds, sort=True):
        sample_paths = [paths[s] for s in part["sample_id"]]
        try:
            images = cam_loaders.load_images(sample_paths)
            result = cam_loaders.explain(cam_loaders.FoldModel(run_dir, run_name, int(fold)), images,
                                         cam_loaders.images_token(sample_paths), method="gradcam",
                                         targets=tuple(int(t) for t in part["suggested_index"]), layer=None)
        except EngineError as e:
            out.update(dict.fromkeys(part["sample_id"], str(e)))
            continue
        for i, sid in enumerate(part["sample_id"]):
            out[sid] = cam_tile(images[i], result.cams[i], side=TILE)
    return out


def _decide(spec_path: str, sample_id: str, action: str, label: str | None, given: str, note: str,
            classes: list[str]) -> None:
    try:
        set_override(spec_path, sample_id, action, label=label, given_label=given, note=note, classes=classes)
    except EngineError as e:
        st.session_state[state.REVIEW_MESSAGE] = ("error", str(e))


def _undo(spec_path: str, sample_id: str) -> None:
    try:
        remove_override(spec_path, sample_id)
    except EngineError as e:
        st.session_state[state.REVIEW_MESSAGE] = ("error", str(e))


def decision_text(decision: Override | None) -> str:
    if decision is None:
        return ":gray[no decision yet]"
    if decision.action == "relabel":
        return f":orange[relabelled: **{decision.given_label}** → **{decision.label}**]"
    return ACTION_TEXT[decision.action]


def _actions(row, decision: Override | None, spec_path: str | None, classes: list[str]) -> None:
    sid = str(row.sample_id)
    if spec_path is None:
        st.caption("Decisions are saved beside the dataset's `dataset.yaml`, which this dataset folder does not have "
                   "(it is read-only); copy the dataset somewhere writable to review it.")
        return
    note = (f"review: given {row.given}, suggested {row.suggested}, self-confidence {row.self_confidence:.3f}"
            + (f", agreed by {row.agree}" if row.agree else ""))
    st.markdown(decision_text(decision))
    b1, b2 = st.columns(2)
    b1.button("Keep", key=f"review_keep_{sid}", icon=":material/check:", width="stretch",
              on_click=_decide, args=(spec_path, sid, "keep", None, row.given, note, classes),
              help="The given label is right: remember it as reviewed.")
    b2.button("Exclude", key=f"review_exclude_{sid}", icon=":material/block:", width="stretch",
              on_click=_decide, args=(spec_path, sid, "exclude", None, row.given, note, classes),
              help="Leave this image out of the next runs (the file stays where it is).")
    key = state.REVIEW_RELABEL_PREFIX + sid
    others = [c for c in classes if c != row.given]
    if st.session_state.get(key) not in others:
        st.session_state[key] = row.suggested if row.suggested in others else others[0]
    r1, r2 = st.columns([1, 1], vertical_alignment="bottom")
    target = r1.selectbox("Relabel to", others, key=key, label_visibility="collapsed")
    r2.button("Relabel", key=f"review_do_relabel_{sid}", icon=":material/edit:", width="stretch",
              on_click=_decide, args=(spec_path, sid, "relabel", target, row.given, note, classes),
              help="Train the next runs with this label instead of the given one.")
    if decision is not None:
        st.button("Undo", key=f"review_undo_{sid}", icon=":material/undo:", on_click=_undo, args=(spec_path, sid))


def _duplicates(dups: pd.DataFrame, paths: dict[str, str], given: str) -> None:
    if dups is None:
        st.caption(":gray[duplicates: the images are not scanned]")
        return
    other = dups[~dups["same_label"]]
    same = int(dups["same_label"].sum())
    if other.empty:
        st.caption("No duplicate with another label" + (f" ({same} with the same label)." if same else "."))
        return
    st.caption(f"**{len(other)} duplicate(s) with another label**" + (f", {same} with the same" if same else ""))
    cols = st.columns(min(len(other), 3))
    for i, r in enumerate(other.head(3).itertuples()):
        data = thumbnail(r.partner_path, 64)
        if data is not None:
            cols[i].image(data, output_format=image_format(data),
                          caption=f"{r.kind}: label {r.partner_label} (this: {given})")


def card(row, proba: np.ndarray, classes: list[str], tile, dups: pd.DataFrame | None, decision: Override | None,
         spec_path: str | None, paths: dict[str, str]) -> None:
    """One image: the picture, the Grad-CAM of the suggested class, the probabilities, duplicates, the actions."""
    with st.container(border=True):
        c_img, c_cam, c_bars, c_dup, c_act = st.columns([1, 1, 1.7, 1.5, 1.6])
        data = thumbnail(paths[row.sample_id], TILE) if row.sample_id in paths else None
        if data is None:
            c_img.caption(f"`{row.sample_id}` (image not found)")
        else:
            c_img.image(data, output_format=image_format(data))
        c_img.caption(f"#{row.rank} · `{row.sample_id}`")
        if isinstance(tile, np.ndarray):
            c_cam.image(tile)
            c_cam.caption(f"Grad-CAM for **{row.suggested}**")
        else:
            c_cam.caption(f"No Grad-CAM: {tile}" if tile else "No Grad-CAM")
        c_bars.markdown(f"given **{row.given}** → suggested **{row.suggested}**")
        c_bars.plotly_chart(confidence_bars(proba, classes, given=int(row.given_index),
                                            suggested=int(row.suggested_index)),
                            width="stretch", key=f"review_bars_{row.sample_id}", config={"displayModeBar": False})
        where = f"fold {int(row.fold)} (OOF)" if pd.notna(row.fold) else "holdout (fold models' mean)"
        c_bars.caption(f"{where} · margin {row.margin:+.2f} · agree: {row.n_agree}/{row.n_members}"
                       + (f" ({row.agree})" if row.agree else ""))
        with c_dup:
            _duplicates(dups, paths, row.given)
        with c_act:
            _actions(row, decision, spec_path, classes)


def duplicates(dataset: Dataset, dataset_path: str, workspace: Path, shown: pd.DataFrame) -> pd.DataFrame | None:
    """Training images duplicating the shown ones (the dataset's scan: run now when this studio has not yet)."""
    from studio import loaders
    from studio.widgets.eda import scan_or_stop

    if shown.empty:
        return None
    token = loaders.scan_token(dataset_path, workspace)
    scan = scan_or_stop(dataset, token)
    labels = dataset.manifest.set_index(dataset.manifest["sample_id"].astype(str))["label"]
    return label_loaders.duplicates(token, tuple(shown["sample_id"]), scan.table, labels)


def review_list(found: LabelIssues, shown: pd.DataFrame, overrides: LabelOverrides, *, spec_path: str | None,
                paths: dict[str, str], run_dir: str, run_name: str, dups: pd.DataFrame | None) -> None:
    """A card per shown row (one page of the ranked list)."""
    if shown.empty:
        return
    with st.spinner("Grad-CAM of the suggested classes..."):
        tiles = cam_tiles(shown, run_dir, run_name, paths)
    for row in shown.itertuples(index=False):
        mine = None if dups is None else dups[dups["sample_id"] == row.sample_id]
        card(row, found.proba[row.row], found.classes, tiles.get(row.sample_id), mine, overrides.get(row.sample_id),
             spec_path, paths)


def show_message() -> None:
    message = st.session_state.pop(state.REVIEW_MESSAGE, None)
    if message:
        {"error": st.error, "success": st.success}[message[0]](message[1])


# ---------------------------------------------------------------- relaunch


def relaunch_name(name: str | None) -> str:
    base = (name or "run").removesuffix(RELAUNCH_SUFFIX)
    return base + RELAUNCH_SUFFIX


def relaunch_section(run_dirs: list[str], overrides: LabelOverrides, workspace: Path) -> None:
    """Launch the reviewed runs' configs again: the new runs train with the decisions (and record them)."""
    from engine.jobs import launch_training

    st.subheader("Train again with these decisions")
    counts = overrides.counts()
    changes = counts["exclude"] + counts["relabel"]
    if not changes:
        st.caption("Exclude or relabel images above; then relaunch the same config here. Nothing is deleted: the "
                   "decisions live in the overrides file beside the dataset spec.")
        return
    st.caption(f"{counts['exclude']} excluded and {counts['relabel']} relabelled image(s) in `{overrides.path}`. The "
               "new run records the decisions it trained with; when it is done, the **Ensemble** page's *Label "
               "overrides* tab compares it with this one on the images both scored.")
    if st.button(f"Relaunch {len(run_dirs)} run config(s) with the overrides", type="primary",
                 icon=":material/restart_alt:", key="review_relaunch"):
        launched = []
        try:
            for run_dir in run_dirs:
                config = run_loaders.run_config(run_dir)
                launched += launch_training({**config, "name": relaunch_name(config.get("name")),
                                             "label_overrides": None}, workspace=workspace)
        except EngineError as e:
            st.error(str(e))
        else:
            st.session_state[state.REVIEW_MESSAGE] = (
                "success", f"Launched {', '.join(f'`{p.name}`' for p in launched)} with the overrides. Watch it on "
                           "the **Train** page.")
            st.rerun()


# ---------------------------------------------------------------- Data page and Ensemble page


def overrides_note(dataset: Dataset) -> None:
    """The Data page's word on the label overrides applied to the manifest (nothing when there are none)."""
    applied = dataset.overrides
    if applied is None or not (applied.changes or applied.kept or applied.skipped):
        return
    st.caption(f":orange[Label overrides applied: {applied.summary()}] (from `{applied.path}`, written on the "
               "**Review** page; the images and CSV are untouched, new runs train with these labels).")
    with st.expander(f"What the overrides changed ({applied.changes} image(s))"):
        left, right = st.columns(2)
        left.markdown(f"**Excluded** ({len(applied.excluded)})")
        left.dataframe(applied.excluded.drop(columns=["path"]), hide_index=True, width="stretch")
        right.markdown(f"**Relabelled** ({len(applied.relabelled)})")
        right.dataframe(applied.relabelled, hide_index=True, width="stretch")
        for message in applied.skipped:
            st.warning(message)


def overrides_comparison_section(all_runs: pd.DataFrame, tta: str) -> None:
    """A run trained with label overrides against the same config without them, on the samples both scored."""
    dirs = tuple(all_runs["path"])
    pairs = label_loaders.override_pairs(dirs, run_loaders.runs_token(dirs))
    if not pairs:
        st.info("No run trained with label overrides has a twin without them yet. On the **Review** page, exclude or "
                "relabel images, then *Relaunch*: when the new run has finished folds, it is compared here with "
                "the run you reviewed.")
        return
    names = all_runs.set_index("path")["name"].to_dict()
    pair = st.selectbox("Runs", pairs, key="ens_ovr_pair",
                        format_func=lambda p: f"{names.get(p[1], p[1])} (with overrides) vs {names.get(p[0], p[0])}")
    subset = st.radio("Samples", ["all", "oof", "holdout"], horizontal=True, key="ens_ovr_subset",
                      format_func={"all": "all scored out of sample", "oof": "out-of-fold only",
                                   "holdout": "holdout only"}.get)
    st.info("Excluding images changes the out-of-fold set: the relaunched run drew another split, so the runs are "
            "compared only on the images **both** scored out of sample **with the same label**. Excluded images "
            "(not in the new run) and relabelled ones (their label differs) are left out.", icon=":material/info:")
    try:
        result = label_loaders.common_sample_comparison(pair[1], pair[0], run_loaders.runs_token(tuple(pair)), subset,
                                                        tta)
    except EngineError as e:
        st.info(f"These runs cannot be compared: {e}")
        return
    c = result.counts
    st.caption(f"{c['common']:,} images compared · {c['label_differs']:,} relabelled left out · {c['only_b']:,} only "
               f"in the run without overrides (e.g. excluded) · {c['only_a']:,} only in the run with them.")
    st.dataframe(result.metrics, hide_index=True, width="stretch",
                 column_config={m: st.column_config.NumberColumn(format="%.4f") for m in METRIC_LABELS})
    diffs = result.differences.assign(label=lambda f: f["metric"].map(METRIC_LABELS))
    st.plotly_chart(difference_intervals(diffs, label_column="label", title="with overrides minus without"),
                    width="stretch", key="ens_ovr_diff")
    for r in result.differences.itertuples():
        better = "lower is better" if r.metric == "log_loss" else "higher is better"
        verdict = "a real difference" if r.diff_low > 0 or r.diff_high < 0 else "could be noise"
        st.caption(f"{METRIC_LABELS[r.metric]} ({better}): {r.diff:+.4f} [{r.diff_low:+.4f}, {r.diff_high:+.4f}] — "
                   f"{verdict}")
