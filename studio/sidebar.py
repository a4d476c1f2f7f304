"""The shared sidebar: which dataset is open (the demo dataset by default) and the workspace."""

from __future__ import annotations

import streamlit as st

from engine.errors import EngineError
from studio import state
from studio.loaders import load_dataset_cached


def dataset_sidebar() -> None:
    with st.sidebar:
        st.markdown("### Fold Studio")
        if state.dataset_path() is None:
            from engine.data.demo import make_demo_dataset

            with st.spinner("Writing the demo dataset (handwritten digits)..."):
                spec = make_demo_dataset(state.workspace() / "datasets" / "digits-demo")
            st.session_state[state.DATASET_PATH] = str(spec)
        try:
            ds = load_dataset_cached(state.dataset_path())
        except EngineError as e:
            st.error(str(e))
            return
        st.metric("Dataset", ds.name)
        st.caption(f"{len(ds.manifest):,} training images · {ds.num_classes} classes · "
                   f"{len(ds.test_manifest):,} test images")
        st.caption(f"Workspace: `{state.workspace()}`")
