"""The Submit page's widgets: the combination to submit (from the Ensemble page, or by hand: ``submission_ui``),
and the public leaderboard against CV (``leaderboard_section``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.analysis.tta import TTA_MODES
from engine.errors import EngineError
from studio import state
from studio.widgets.runs import MISSING, run_label, select_latest_study

VOTING = ["soft", "hard", "logit_mean", "geometric"]


def submission_args(choice: dict, run_paths: dict[str, str]) -> dict:
    """make_submission keyword arguments for a combination of (run, fold) members (pure, testable).

    make_submission votes over runs x folds; members left out of the combination get weight 0, and a
    member picked twice (greedy selection with replacement) weighs 2.
    """
    runs = list(dict.fromkeys(choice["runs"]))
    folds = sorted({int(f) for _, f in choice["members"]})
    weight = {(r, int(f)): 0.0 for r in runs for f in folds}
    for (r, f), w in zip(choice["members"], choice["weights"], strict=True):
        weight[(r, int(f))] += float(w)
    return {"runs": [run_paths[r] for r in runs], "folds": folds, "voting": choice["voting"], "tta": choice["tta"],
            "views": choice.get("views"), "weights": [weight[(r, f)] for r in runs for f in folds]}


def submission_ui(runs: pd.DataFrame) -> dict | None:
    """The combination to submit: the one saved on the Ensemble page, or one set by hand. None until chosen."""
    saved = st.session_state.get(state.SUBMIT_CHOICE)
    sources = (["From the Ensemble page"] if saved else []) + ["By hand"]
    source = st.radio("Combination", sources, horizontal=True, key="submit_source")
    if source == "From the Ensemble page":
        members = ", ".join(f"{r}/fold{f}" for r, f in saved["members"])
        st.caption(f"{saved['voting']} vote of {members} (TTA: {saved['tta']}); expected on the holdout: accuracy "
                   f"{saved['expected']['accuracy']:.4f}, macro-F1 {saved['expected']['macro_f1']:.4f}.")
        return saved
    ids = list(runs["run_id"])
    select_latest_study(runs, key="submit_runs")
    chosen = st.multiselect("Runs", ids, key="submit_runs", format_func=run_label(runs))
    if not chosen:
        return None
    k = int(runs.set_index("run_id").loc[chosen, "folds"].min())
    c1, c2, c3 = st.columns(3)
    folds = c1.multiselect("Folds", list(range(k)), default=list(range(k)), key="submit_folds")
    voting = c2.selectbox("Voting across runs x folds", VOTING, key="submit_voting")
    tta = c3.selectbox("TTA merge", list(TTA_MODES), key="submit_tta")
    if not folds:
        return None
    return {"runs": chosen, "members": [[r, f] for r in chosen for f in folds], "weights": [1.0] * (len(chosen) * len(folds)),
            "voting": voting, "tta": tta, "views": None}


# ---------------------------------------------------------------- CV <-> public leaderboard


def expected_caption(expected: dict) -> str:
    """The expected score of a written submission, with its interval, and the fallback when it is OOF's."""
    interval = (expected.get("intervals") or {}).get("accuracy")
    acc = f"accuracy {expected['accuracy']:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "")
    text = (f"Expected score ({expected.get('basis', expected.get('subset'))}, n={expected.get('n')}): {acc}, "
            f"macro-F1 {expected['macro_f1']:.4f}.")
    return text + (f" :orange[{expected['fallback']}.]" if expected.get("fallback") else "")


def _save_lb(workspace: Path) -> None:
    from engine.submission import set_leaderboard_score

    chosen = st.session_state.get(state.LB_SUBMISSION)
    value = st.session_state.get("submit_lb_score")
    if value is None:
        st.session_state["submit_lb_message"] = ("error", "Type the score the public leaderboard gave first.")
        return
    try:
        set_leaderboard_score(chosen, value, metric=st.session_state.get("submit_lb_metric"), workspace=workspace)
    except EngineError as e:
        st.session_state["submit_lb_message"] = ("error", str(e))
    else:
        st.session_state["submit_lb_message"] = ("success", f"Saved: public LB {value:.4f} for `{chosen}` (in its "
                                                            "sidecar JSON).")


def leaderboard_form(submissions: pd.DataFrame, workspace: Path) -> None:
    """Enter the public-leaderboard score a submission got; it is stored in the submission's sidecar."""
    from engine.submission import INTERVAL_METRICS

    ids = list(submissions["id"])
    if st.session_state.get(state.LB_SUBMISSION) not in ids:
        st.session_state[state.LB_SUBMISSION] = ids[0]
    with st.form("submit_lb_form", border=True):
        c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
        c1.selectbox("Submission", ids, key=state.LB_SUBMISSION)
        c2.number_input("Public LB score", min_value=0.0, value=None, step=0.0001, format="%.4f", key="submit_lb_score")
        c3.selectbox("Metric", list(INTERVAL_METRICS), key="submit_lb_metric",
                     help="What the leaderboard measures; the CV score it is compared with is the same metric.")
        st.form_submit_button("Save LB score", icon=":material/leaderboard:", on_click=_save_lb, args=(workspace,))
    message = st.session_state.pop("submit_lb_message", None)
    if message:
        {"error": st.error, "success": st.success}[message[0]](message[1])


def leaderboard_section(workspace: Path) -> None:
    """Every submission with its CV (holdout, OOF) and public-LB score, the CV-vs-LB chart, and the flags."""
    from engine.submission import cv_lb_correlation, list_submissions
    from studio.figures.leaderboard import cv_lb_figure

    frame = list_submissions(workspace)
    if frame.empty:
        st.caption("None yet.")
        return
    shown = frame[["id", "created_at", "runs", "voting", "expected_on", "holdout_accuracy", "oof_accuracy", "lb_metric",
                   "lb", "cv", "cv_low", "cv_high", "flag"]]
    number = {c: st.column_config.NumberColumn(format="%.4f") for c in
              ("holdout_accuracy", "oof_accuracy", "lb", "cv", "cv_low", "cv_high")}
    st.dataframe(shown, hide_index=True, width="stretch", column_config=number, key="submit_table", placeholder=MISSING)
    leaderboard_form(frame, workspace)
    entered = frame[frame["lb"].notna()]
    if entered.empty:
        st.caption("Enter the public-leaderboard score of a submission to see it against its CV score here.")
        return
    metric = entered["lb_metric"].mode().iloc[0]
    st.plotly_chart(cv_lb_figure(frame, cv_lb_correlation(frame, metric), metric), width="stretch",
                    key="submit_cv_lb")
    for row in entered.itertuples():
        if row.flag == "outside":
            st.warning(f"**{row.id}**: {row.message}", icon=":material/warning:")
        elif row.flag == "no interval":
            st.info(f"**{row.id}**: {row.message}")
    st.caption("A point outside its CV interval is flagged: the interval is how far the CV score moves on another draw "
               "of as many images, so an LB beyond it is more than chance (the public LB has its own noise too).")
