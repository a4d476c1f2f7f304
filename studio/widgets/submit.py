"""The Submit page's choice of combination: from the Ensemble page, or by hand (``submission_ui``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.analysis.tta import TTA_MODES
from studio import state
from studio.widgets.runs import run_label, select_latest_study

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
