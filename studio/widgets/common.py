"""Widgets every page needs: the open dataset (or a clear message why there is none)."""

from __future__ import annotations

import streamlit as st

from engine.data import Dataset
from studio import state
from studio.loaders import load_dataset_cached


def require_dataset() -> Dataset:
    """The open dataset; when there is none (or it cannot be read), say so and stop this page's run."""
    path = state.dataset_path()
    error = state.dataset_error()
    if path is None or error is not None:
        st.info(
            "**Open a dataset to start.** Type a dataset folder or a `dataset.yaml` path in the sidebar and "
            "press *Open*, or press *Demo dataset*."
            + (f"\n\nThe dataset at `{path}` could not be opened; the sidebar says why." if error else ""),
            icon=":material/folder_open:",
        )
        st.stop()
    return load_dataset_cached(path)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"
