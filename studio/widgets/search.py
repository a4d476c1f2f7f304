"""The Train page's Search mode: launch an Optuna search, then watch its trials, Optuna's figures, and use the best.

The form is an ``st.form`` that builds a run config with a ``search:`` section (the YAML shape of
docs/formats.md); the engine validates it and starts the search in its own process
(:func:`engine.search.launch_search`), so nothing long runs inside a script run. The results are a
fragment that polls only while the chosen search is queued or running; everything comes back from
the workspace (``searches/`` and the SQLite ``optuna.db``) after a browser refresh or a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from engine.augment.presets import PRESET_NAMES
from engine.data import Dataset
from engine.errors import ConfigError, EngineError
from engine.workspace import runs_dir
from studio import search_loaders, state
from studio.figures.compare import METRIC_LABELS
from studio.figures.search import SEARCH_FIGURES
from studio.widgets.jobs import ACTIVE, REFRESH_SECONDS, STATE_ICONS
from studio.widgets.runs import MISSING
from studio.widgets.train_form import (
    PRETRAINED_CHOICES,
    QUICK_MODELS,
    build_config,
    form_state_from_config,
    model_names,
    pin_defaults,
)

METRICS = {"macro_f1": "macro-F1 (max)", "accuracy": "accuracy (max)", "log_loss": "log loss (min)"}
EVALUATE_ON = {"oof": "OOF over every fold", "fold0": "fold 0 only (trains fold 0: faster)"}
AUGMENT_MODES = {"fixed": "one preset", "presets": "choose among presets", "strength": "strength 0..1"}


# ---------------------------------------------------------------- launching


def search_form_ui(dataset: Dataset, workspace: Path, devices: list[str]) -> dict[str, Any] | None:
    """Draw the search form; on "Launch search" return the config dict (with its ``search`` section), else None."""
    small = dataset.name == "digits-demo"
    with st.form("search_form", border=True):
        st.markdown("**Every trial shares** (the split too: trials compare like for like)")
        c0, c1, c2, c3, c4, c5 = st.columns([3, 2, 1, 1, 1, 1])
        models = c0.multiselect("Models (several: the search picks)", model_names(), default=[QUICK_MODELS[1]],
                                key="train_search_models")
        pretrained = c1.selectbox("Pretrained weights", ["none", "hub"], format_func=PRETRAINED_CHOICES.get,
                                  key="train_search_pretrained",
                                  help="timm's weights from the Hugging Face cache (nothing is downloaded), or none.")
        image_size = c2.number_input("Image size", 8, 1024, 32 if small else 224, step=8, key="train_search_size")
        k = c3.number_input("Folds (k)", 2, 20, 2 if small else 5, key="train_search_k")
        epochs = c4.number_input("Epochs", 1, 500, 2 if small else 10, key="train_search_epochs")
        workers = c5.number_input("Data workers", 0, 64, 0 if small else 2, key="train_search_workers")

        st.markdown("**Search space** (tick what the search varies)")
        c1, c2, c3 = st.columns(3)
        use_lr = c1.checkbox("Learning rate (log-uniform)", True, key="train_search_use_lr")
        lr_low = c1.number_input("lr from", 1e-6, 10.0, 1e-4, format="%.6f", key="train_search_lr_low")
        lr_high = c1.number_input("lr to", 1e-6, 10.0, 1e-1, format="%.6f", key="train_search_lr_high")
        use_wd = c2.checkbox("Weight decay", False, key="train_search_use_wd")
        wd_low = c2.number_input("weight decay from", 0.0, 1.0, 0.0, format="%.4f", key="train_search_wd_low")
        wd_high = c2.number_input("weight decay to", 0.0, 1.0, 0.1, format="%.4f", key="train_search_wd_high")
        use_ls = c3.checkbox("Label smoothing", False, key="train_search_use_ls")
        ls_low = c3.number_input("label smoothing from", 0.0, 0.99, 0.0, format="%.3f", key="train_search_ls_low")
        ls_high = c3.number_input("label smoothing to", 0.0, 0.99, 0.2, format="%.3f", key="train_search_ls_high")
        c1, c2, c3 = st.columns(3)
        batches = c1.multiselect("Batch sizes (several: the search picks)", [8, 16, 32, 64, 128, 256],
                                 default=[32 if small else 64], key="train_search_batches")
        aug_mode = c2.radio("Augmentation", list(AUGMENT_MODES), format_func=AUGMENT_MODES.get, horizontal=True,
                            key="train_search_aug_mode")
        presets = c2.multiselect("Presets", list(PRESET_NAMES), default=["light"], key="train_search_presets")
        strength = c3.slider("Strength range (0: resize + flip, 1: heavy crops, rotations, colour, cut-outs)",
                             0.0, 1.0, (0.0, 1.0), 0.05, key="train_search_strength")

        st.markdown("**Objective and budget**")
        c1, c2, c3, c4, c5 = st.columns(5)
        metric = c1.selectbox("Metric", list(METRICS), format_func=METRICS.get, key="train_search_metric")
        evaluate_on = c2.selectbox("Scored on", list(EVALUATE_ON), format_func=EVALUATE_ON.get,
                                   key="train_search_on")
        trials = c3.number_input("Trials", 1, 1000, 6, key="train_search_trials")
        timeout = c4.number_input("Time limit (min, 0: none)", 0, 10_000, 0, key="train_search_timeout",
                                  help="No new trial starts after this; the running one finishes.")
        pruner = c5.checkbox("Median pruner", True, key="train_search_pruner",
                             help="Stops a trial whose per-epoch validation metric is below the median of "
                                  "earlier trials at the same epoch (after 2 trials and the first epoch).")
        device = c5.selectbox("Device", ["auto", *devices], key="train_search_device")
        name = st.text_input("Search name (optional)", key="train_search_name", placeholder="e.g. lr-and-aug")
        launched = st.form_submit_button("Launch search", type="primary", icon=":material/travel_explore:")
    if not launched:
        return None
    return build_search_config(
        dataset, workspace, models=models, image_size=image_size, k=k, epochs=epochs, workers=workers,
        lr=(lr_low, lr_high) if use_lr else None, weight_decay=(wd_low, wd_high) if use_wd else None,
        label_smoothing=(ls_low, ls_high) if use_ls else None, batches=batches, aug_mode=aug_mode, presets=presets,
        strength=strength, metric=metric, evaluate_on=evaluate_on, trials=trials, timeout_min=timeout,
        pruner=pruner, device=device, name=name, pretrained=pretrained)


def build_search_config(dataset: Dataset, workspace: Path, *, models: list[str], image_size: int, k: int, epochs: int,
                        workers: int, lr: tuple[float, float] | None, weight_decay: tuple[float, float] | None,
                        label_smoothing: tuple[float, float] | None, batches: list[int], aug_mode: str,
                        presets: list[str], strength: tuple[float, float], metric: str, evaluate_on: str,
                        trials: int, timeout_min: float, pruner: bool, device: str, name: str,
                        pretrained: str = "none") -> dict[str, Any]:
    """The config dict (base run + ``search`` section) of the search form's choices. Pure: testable without
    Streamlit. A list of one model / batch size / preset is fixed; two or more are searched."""
    if not models:
        raise ConfigError("The 'models' field needs at least one timm model.")
    if not batches:
        raise ConfigError("The 'batch sizes' field needs at least one batch size.")
    if aug_mode != "strength" and not presets:
        raise ConfigError("The 'presets' field needs at least one augmentation preset.")
    fixed_preset = presets[0] if aug_mode == "fixed" or (aug_mode == "presets" and len(presets) == 1) else "light"
    config = build_config(dataset, workspace, model=models[0], pretrained=pretrained, image_size=int(image_size), k=int(k),
                          holdout=0.1, group=None, epochs=int(epochs), batch=int(batches[0]), optimizer="adamw",
                          lr=1e-3, scheduler="cosine", loss="cross_entropy", smoothing="0.0", workers=int(workers),
                          augment=f"preset: {fixed_preset}", views=["identity", "hflip"], device=device, name="")
    params: dict[str, Any] = {}
    for key, bounds, log in (("train.lr", lr, True), ("train.weight_decay", weight_decay, False),
                             ("train.label_smoothing", label_smoothing, False)):
        if bounds is not None:
            params[key] = {"low": float(bounds[0]), "high": float(bounds[1]), **({"log": True} if log else {})}
    if len(models) > 1:
        params["model.name"] = list(models)
    if len(batches) > 1:
        params["train.batch_size"] = [int(b) for b in batches]
    if aug_mode == "presets" and len(presets) > 1:
        params["augment"] = list(presets)
    elif aug_mode == "strength":
        params["augment_strength"] = {"low": float(strength[0]), "high": float(strength[1])}
    if not params:
        raise ConfigError("Nothing to search: tick at least one parameter, or pick several models, batch sizes or "
                          "presets.")
    config["search"] = {"name": name.strip() or None, "metric": metric, "evaluate_on": evaluate_on,
                        "trials": int(trials), "timeout": float(timeout_min) * 60 if timeout_min else None,
                        "pruner": "median" if pruner else "none", "params": params}
    return config


def launch_ui(dataset: Dataset, workspace: Path, devices: list[str], *, launcher=None) -> None:
    """The form, and the launch itself (validation and process start only: the trials run elsewhere, each a
    run on ``launcher``: this machine or the Ray cluster chosen under *Where to train*)."""
    from engine.search import launch_search

    try:
        config = search_form_ui(dataset, workspace, devices)
        path = launch_search(config, workspace=workspace, launcher=launcher) if config is not None else None
    except EngineError as e:
        st.error(str(e))
        return
    if path is not None:
        st.session_state[state.TRAIN_SEARCH] = path.name
        st.success(f"Search {path.name} started: its trials run one after another in the background, each a run "
                   "in the monitor below.")


# ---------------------------------------------------------------- results


def _status_line(row: dict) -> str:
    best = "" if row.get("best_value") is None else (f" · best {row['best_value']:.4f} (trial {row['best_trial']})")
    return (f"{STATE_ICONS.get(row['state'], '')} **{row['state']}** · {row.get('trials_done', 0)}/{row['trials']} "
            f"trials · {row['direction']} {row['evaluate_on']} {METRIC_LABELS.get(row['metric'], row['metric'])}{best}")


def _search_label(table: pd.DataFrame):
    by_id = table.set_index("search_id")
    return lambda sid: f"{by_id.at[sid, 'name']} · {by_id.at[sid, 'trials']} trials · {sid}"


def results_ui(workspace: Path, dataset: Dataset) -> None:
    """Pick a search; its status, actions, trials and Optuna's figures (a fragment while it runs)."""
    table = search_loaders.searches_table(workspace)
    st.subheader("Searches")
    if table.empty:
        st.info("No searches yet: choose what to vary above and press **Launch search**. Each trial is a normal "
                "run (it appears in the monitor below).")
        return
    ids = list(table["search_id"])
    if st.session_state.get(state.TRAIN_SEARCH) not in ids:
        st.session_state[state.TRAIN_SEARCH] = ids[0]
    chosen = st.selectbox("Search", ids, key=state.TRAIN_SEARCH, format_func=_search_label(table))
    active = table.set_index("search_id").at[chosen, "state"] in ACTIVE

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def live() -> None:
        if st.session_state.pop(_FULL_RERUN, False):
            st.rerun()  # an action changed what the whole page shows (mode, monitor, polling): not just this part
        search_detail(workspace, chosen, dataset, rerun_when_done=active)

    live()


def search_detail(workspace: Path, search_id: str, dataset: Dataset, *, rerun_when_done: bool = False) -> None:
    from engine.search import effective_search_status, read_search

    path = workspace / "searches" / search_id
    try:
        record, status = read_search(path), effective_search_status(path)
    except EngineError as e:
        st.error(str(e))
        return
    row = {"state": status["state"], "trials_done": status.get("trials_done", 0), "trials": record.search.trials,
           "direction": record.direction, "evaluate_on": record.search.evaluate_on, "metric": record.search.metric,
           "best_value": status.get("best_value"), "best_trial": status.get("best_trial")}
    st.markdown(_status_line(row))
    if status.get("message") and status["state"] in ACTIVE:
        st.caption(status["message"])
    if status["state"] == "failed" and status.get("error"):
        st.error(status["error"])
    actions_ui(path, status, record.search.trials)
    token = search_loaders.search_token(path)
    trials = search_loaders.trials_table(str(path), token)
    trials_ui(workspace, trials, list(record.search.params))
    best_ui(workspace, record, status, dataset)
    figures_ui(str(path), token)
    st.caption(f"The study is `{search_id}` in `{workspace / 'optuna.db'}`: `optuna-dashboard sqlite:///"
               f"{workspace / 'optuna.db'}` opens it too.")
    if rerun_when_done and status["state"] not in ACTIVE:
        st.rerun()  # the search ended: redraw the page so polling stops


_FULL_RERUN = "train_search_full_rerun"  # set by the callbacks below: the fragment then reruns the whole page


def active_searches(workspace: Path) -> bool:
    """Whether a search of the workspace is queued or running (the page then polls its monitor too)."""
    table = search_loaders.searches_table(workspace)
    return bool(not table.empty and table["state"].isin(ACTIVE).any())


def _say(kind: str, text: str) -> None:
    st.session_state[state.TRAIN_SEARCH_MESSAGE] = (kind, text)
    st.session_state[_FULL_RERUN] = True


def _guarded(action, done: str) -> None:
    try:
        action()
    except EngineError as e:
        _say("error", str(e))
    else:
        _say("success", done)


def actions_ui(path: Path, status: dict, trials: int) -> None:
    from engine.search import cancel_search, resume_search

    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Cancel search", icon=":material/stop_circle:", disabled=status["state"] not in ACTIVE,
              key=f"search_cancel_{path.name}", on_click=_guarded,
              args=(lambda: cancel_search(path), f"Search {path.name} cancelled (its running trial too)."))
    b2.button("Resume search", icon=":material/play_circle:",
              disabled=status["state"] in ACTIVE or int(status.get("trials_done") or 0) >= trials,
              key=f"search_resume_{path.name}", on_click=_guarded,
              args=(lambda: resume_search(path), f"Search {path.name} resumed for its missing trials."))
    message = st.session_state.pop(state.TRAIN_SEARCH_MESSAGE, None)
    if message:
        getattr(st, message[0])(message[1])


def trials_ui(workspace: Path, trials: pd.DataFrame, params: list[str]) -> None:
    """The trials, each linked to its run: pick one to show it in the monitor or on the Folds page."""
    if trials.empty:
        st.caption("The first trial is being prepared.")
        return
    view = trials.copy()
    view["duration_s"] = view["duration_s"].round(1)
    event = st.dataframe(view, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="train_search_trials_table", placeholder=MISSING,
                         column_config={"value": st.column_config.NumberColumn(format="%.4f"),
                                        **{p: st.column_config.Column(p) for p in params}})
    picked = event.selection.rows[0] if event and event.selection.rows else None
    run_id = view.iloc[picked]["run_id"] if picked is not None else None
    c1, c2, _ = st.columns([2, 2, 3])
    disabled = not isinstance(run_id, str) or not (runs_dir(workspace) / run_id).is_dir()
    hint = "Pick a trial in the table first." if picked is None else None
    c1.button("Show its run in the monitor", icon=":material/monitoring:", disabled=disabled, help=hint,
              key="train_search_show_run", on_click=_show_run, args=(run_id,))
    if c2.button("Open its run on the Folds page", icon=":material/view_column:", disabled=disabled, help=hint,
                 key="train_search_folds"):
        st.session_state[state.FOLDS_RUN] = run_id
        st.switch_page(str(Path(__file__).resolve().parents[2] / "pages" / "folds.py"))


def _show_run(run_id: str) -> None:
    st.session_state[state.TRAIN_SELECTED_RUN] = run_id
    st.session_state[_FULL_RERUN] = True


def best_ui(workspace: Path, record, status: dict, dataset: Dataset) -> None:
    """"Use best": the best trial's run config fills the Train form (mode switches to Train)."""
    run_id = status.get("best_run_id")
    if not run_id:
        return
    run_dir = runs_dir(workspace) / str(run_id)
    st.button(f"Use best (trial {status.get('best_trial')}) in the Train form", icon=":material/input:",
              type="primary", key="train_search_use_best", disabled=not run_dir.is_dir(), on_click=use_best,
              args=(str(run_dir), f"{record.name} best (trial {status.get('best_trial')})", dataset))


def use_best(run_dir: str, label: str, dataset: Dataset) -> None:
    """Callback: the Train form's widgets take the trial run's config (its model, weights, size and k pinned
    against the defaults that follow the model); a non-preset pipeline becomes an option of the form."""
    from studio import run_loaders

    try:
        values, pipeline = form_state_from_config(run_loaders.run_config(run_dir), label=label)
    except EngineError as e:  # the trial's run was damaged since (its config.yaml unreadable): say so, keep the form
        _say("error", str(e))
        return
    st.session_state[state.TRAIN_TRIAL_PIPELINE] = pipeline
    st.session_state.update(values)
    st.session_state.update(pin_defaults(values, dataset))
    st.session_state[state.TRAIN_MODE] = "train"
    st.session_state[_FULL_RERUN] = True


def figures_ui(search_dir: str, token: tuple) -> None:
    figures = search_loaders.search_figures(search_dir, token)
    tabs = st.tabs(list(SEARCH_FIGURES.values()))
    for tab, key in zip(tabs, SEARCH_FIGURES, strict=True):
        fig, caption = figures[key]
        with tab:
            if fig is None:
                st.info(caption)
            else:
                st.plotly_chart(fig, width="stretch", key=f"train_search_fig_{key}")
                st.caption(caption)
