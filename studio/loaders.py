"""Cached loaders: the studio's only way to reach engine results that come from files.

Keyed by small arguments (a path and its modification time), never by big objects.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from engine.data import Dataset, open_dataset


def _mtime(path: str) -> float:
    p = Path(path)
    target = p / "dataset.yaml" if p.is_dir() else p
    try:
        return os.stat(target).st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=4, show_spinner="Reading the dataset...")
def _load_dataset(path: str, mtime: float) -> Dataset:
    return open_dataset(path)


def load_dataset_cached(path: str) -> Dataset:
    """The dataset at ``path`` (spec YAML or folder), re-read when its spec file changes. Do not mutate."""
    return _load_dataset(path, _mtime(path))
