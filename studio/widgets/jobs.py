"""The job monitor: runs, per-fold progress, learning curves, log tail, cancel and resume.

Drawn inside an ``st.fragment`` that reruns every few seconds only while a job is queued or running,
so a live job refreshes without rerunning the page, and an idle page costs nothing. Everything is read
from the run directories: a browser refresh or a studio restart loses nothing.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.errors import EngineError
from engine.runs import ACTIVE_STATES, DAMAGED, RunRecord, fold_share, seconds_between
from studio import run_loaders
from studio.figures.training import learning_curves
from studio.widgets.runs import MISSING

ACTIVE = ACTIVE_STATES
STATE_ICONS = {"queued": "…", "running": "▶", "done": "✓", "failed": "✗", "cancelled": "■",
               DAMAGED: "⚠"}  # plain glyphs: no emoji font needed
REFRESH_SECONDS = 2.0


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def timing(status: dict) -> tuple[float | None, float | None]:
    """(elapsed, remaining) seconds of a run; remaining extrapolates the progress so far."""
    elapsed = seconds_between(status.get("started_at"), status.get("finished_at"))
    progress = float(status.get("progress") or 0.0)
    if status.get("state") != "running" or elapsed is None or progress <= 0.0:
        return elapsed, None
    return elapsed, elapsed * (1.0 - progress) / progress


def runs_overview(runs: pd.DataFrame) -> None:
    """A compact table of runs with state, progress and best mean validation metrics; ``note`` says what is
    wrong with a run (damaged, failed, or a finished fold's files missing)."""
    view = runs[["name", "state", "model", "progress", "val_accuracy", "val_macro_f1", "val_loss", "run_id"]].copy()
    view["state"] = [f"{STATE_ICONS.get(s, '')} {s}" for s in view["state"]]
    if runs["error"].notna().any():
        view["note"] = runs["error"]
    st.dataframe(
        view, hide_index=True, width="stretch", placeholder=MISSING,  # no metric before the first epoch ends
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "val_accuracy": st.column_config.NumberColumn("val accuracy", format="%.3f"),
            "val_macro_f1": st.column_config.NumberColumn("val macro-F1", format="%.3f"),
            "val_loss": st.column_config.NumberColumn("val loss", format="%.3f"),
        },
    )


def fold_progress(status: dict) -> None:
    """One progress bar per fold with its state, epoch and batch."""
    folds = status.get("folds") or {}
    for key in sorted(folds, key=int):
        f = folds[key]
        epochs, epoch = f.get("epochs") or 0, f.get("epoch") or 0
        batches, batch = f.get("batches") or 0, f.get("batch") or 0
        share = fold_share(f)
        best = f.get("best_metric")
        text = (f"fold {key} · {f.get('state', '?')} · epoch {epoch}/{epochs}"
                + (f" · batch {batch}/{batches}" if f.get("state") == "running" and batches else "")
                + (f" · best {best:.4f}" if isinstance(best, (int, float)) else ""))
        st.progress(share, text=text)


def run_detail(record: RunRecord, *, launcher) -> None:
    """Progress, timing, curves, log tail and the cancel / resume buttons of one run (what is wrong, for a
    damaged one)."""
    run_dir, status, state = record.path, dict(record.status), record.state
    if record.damaged:
        st.error(f"{record.damage}", icon=":material/report:")
        with st.expander("Log (last 40 lines)"):
            st.code(run_loaders.log_tail(run_dir) or "(empty)", language="text")
        return
    elapsed, remaining = timing(status)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("State", f"{STATE_ICONS.get(state, '')} {state}")
    c2.metric("Progress", f"{float(status.get('progress') or 0):.0%}")
    c3.metric("Elapsed", _clock(elapsed))
    c4.metric("Remaining", _clock(remaining) if state == "running" else "–")
    if status.get("message") and (state in ACTIVE or state == "cancelled"):  # cancelled: e.g. pruned by a search
        st.caption(status["message"])
    if state == "failed" and status.get("error"):
        st.error(f"This run failed: {status['error']}\n\nFinished folds are kept; *Resume* continues from the "
                 "first unfinished fold.")
    missing = None if state in ACTIVE else record.missing_files()  # deleted after the fact: Resume trains them again
    if missing:
        st.warning(f"Run {run_dir.name}: {missing}", icon=":material/report:")
    fold_progress(status)
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Cancel", icon=":material/stop_circle:", disabled=state not in ACTIVE, key=f"cancel_{run_dir.name}"):
        _act(lambda: launcher.cancel(run_dir), f"Run {run_dir.name} cancelled.")
    if b2.button("Resume", icon=":material/play_circle:", disabled=state not in ("failed", "cancelled") and not missing,
                 key=f"resume_{run_dir.name}"):
        _act(lambda: launcher.resume(run_dir), f"Run {run_dir.name} resumed from its first unfinished fold.")
    try:
        metrics = run_loaders.run_metrics(run_dir)
    except EngineError as e:  # a damaged metrics file: say so, keep the rest of the monitor
        st.warning(str(e))
    else:
        if metrics.empty:
            st.caption("Learning curves appear after the first epoch.")
        else:
            st.plotly_chart(learning_curves(metrics), width="stretch", key=f"curves_{run_dir.name}")
    with st.expander("Log (last 40 lines)"):
        st.code(run_loaders.log_tail(run_dir) or "(empty)", language="text")


def _act(action, success: str) -> None:
    try:
        action()
    except EngineError as e:
        st.error(str(e))
    else:
        st.toast(success)
