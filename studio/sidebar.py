"""The shared sidebar: which dataset is open (the demo dataset by default), the workspace, running jobs."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.errors import EngineError
from studio import state
from studio.loaders import active_jobs, damaged_runs, load_dataset_cached
from studio.widgets.progress import jobs_strip


def dataset_sidebar() -> None:
    """Draw the sidebar; leaves ``state.DATASET_ERROR`` set to the engine's message when the dataset cannot open."""
    with st.sidebar:
        _dataset_block()
        _open_controls()
        st.divider()
        st.caption(f"Workspace: `{_short(state.workspace())}`")
        _jobs_block()


def _dataset_block() -> None:
    if state.dataset_path() is None:
        state.open_dataset_path(_default_dataset())
    path = state.dataset_path()
    try:
        ds = load_dataset_cached(path)
    except EngineError as e:
        st.session_state[state.DATASET_ERROR] = str(e)
        st.error(f"**Cannot open this dataset.** {e}", icon=":material/error:")
        return
    st.session_state[state.DATASET_ERROR] = None
    state.remember_dataset(path)
    st.markdown(f"**Dataset:** {ds.name}")
    test = f" · {len(ds.test_manifest):,} test" if len(ds.test_manifest) else ""
    st.caption(f"{len(ds.manifest):,} training images · {ds.num_classes} classes{test}")


def _default_dataset() -> str:
    """A new session continues with the last dataset opened in this workspace, else the demo dataset."""
    last = next(iter(state.recent_datasets()), None)
    if last is not None and Path(last).exists() and not st.session_state.get(state.DEMO_ASKED):
        return last
    from engine.data.demo import default_demo_dir, make_demo_dataset

    with st.spinner("Writing the demo dataset (handwritten digits)..."):
        return str(make_demo_dataset(default_demo_dir(state.workspace())))


def _open_controls() -> None:
    with st.form("sidebar_open_dataset", border=False):
        st.text_input(
            "Open a dataset",
            key=state.DATASET_INPUT,
            placeholder="/path/to/folder or dataset.yaml",
            help="A folder with one sub-folder per class, a folder with a CSV of image paths and labels, "
            "or a dataset.yaml spec. A folder without a spec gets one written into it.",
        )
        st.form_submit_button("Open", icon=":material/folder_open:", on_click=_open_typed_path)
    recent = [p for p in state.recent_datasets() if p != state.dataset_path()]
    cols = st.columns(2) if recent else [st.container()]
    cols[0].button("Demo dataset", icon=":material/draw:", on_click=state.open_demo_dataset,
                   help="Handwritten digits shaped like a Kaggle competition (written into the workspace).")
    if recent:
        with cols[1].popover("Recent", icon=":material/history:"):
            for i, path in enumerate(recent):
                st.button(_label(path), key=f"sidebar_recent_{i}", help=path, on_click=state.open_dataset_path,
                          args=(path,), width="stretch")


def _open_typed_path() -> None:
    typed = (st.session_state.get(state.DATASET_INPUT) or "").strip()
    if typed:
        state.open_dataset_path(str(Path(typed).expanduser()))


def _jobs_block() -> None:
    jobs = active_jobs(state.workspace())
    # Poll only while something runs, so an idle studio never reruns by itself.
    st.fragment(run_every=5 if jobs else None)(_jobs_fragment)()


def _jobs_fragment() -> None:
    jobs_strip(active_jobs(state.workspace()), damaged_runs(state.workspace()))


def _label(path: str) -> str:
    p = Path(path)
    return p.parent.name if p.suffix.lower() in {".yaml", ".yml"} else p.name or str(p)


def _short(path: Path) -> str:
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)
