"""The one owner of session-state keys. Session state holds ids, paths and configs — never tensors.

Shared keys are defined here; page-specific keys carry the page's prefix (``data_``, ``aug_``, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

DATASET_PATH = "dataset_path"  # str: spec YAML or folder of the open dataset
WORKSPACE = "workspace"  # str: workspace folder
RECENT_DATASETS = "recent_datasets"  # list[str]


def init() -> None:
    """Set every shared key once per session (setdefault: a rerun keeps the user's choices)."""
    from engine.workspace import resolve_workspace

    st.session_state.setdefault(WORKSPACE, str(resolve_workspace()))
    st.session_state.setdefault(DATASET_PATH, os.environ.get("FOLD_STUDIO_DATASET") or None)
    st.session_state.setdefault(RECENT_DATASETS, [])


def workspace() -> Path:
    return Path(st.session_state[WORKSPACE])


def dataset_path() -> str | None:
    return st.session_state.get(DATASET_PATH)
