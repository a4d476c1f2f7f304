"""A grid of sample images with a caption per image (disagreements, misclassified samples)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.data import Dataset
from studio.loaders import thumbnail


def sample_paths(dataset: Dataset) -> dict[str, str]:
    """sample_id -> image path over training and test images (holdout and OOF samples are training images)."""
    paths = dict(zip(dataset.manifest["sample_id"], dataset.manifest["path"], strict=True))
    paths.update(zip(dataset.test_manifest["sample_id"], dataset.test_manifest["path"], strict=True))
    return paths


def sample_grid(rows: pd.DataFrame, captions: list[str], paths: dict[str, str], *, columns: int = 6,
                side: int = 128) -> None:
    """Draw ``rows`` (with a ``sample_id`` column) as thumbnails, ``captions`` aligned with the rows."""
    cols = st.columns(columns)
    for i, (sid, caption) in enumerate(zip(rows["sample_id"], captions, strict=True)):
        with cols[i % columns]:
            data = thumbnail(paths[sid], side) if sid in paths else None
            if data is None:
                st.caption(f"`{sid}` (image not found in the run's dataset)")
            else:
                st.image(data, caption=caption, width="stretch")
