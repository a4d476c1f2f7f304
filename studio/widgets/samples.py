"""A grid of sample images with a caption per image (disagreements, misclassified samples)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.data import Dataset
from studio.loaders import thumbnail

SUBSETS = ("oof", "holdout", "test")


def sample_paths(dataset: Dataset, subset: str) -> dict[str, str]:
    """sample_id -> image path of the images a prediction subset holds: the test images for ``test``, the
    training images for ``oof`` and ``holdout``. One subset at a time: a test id may equal a training id
    (Kaggle numbers both from 0), and the two are different images."""
    if subset not in SUBSETS:
        raise ValueError(f"The 'subset' parameter must be a str among {list(SUBSETS)}. Got {subset!r} instead.")
    table = dataset.test_manifest if subset == "test" else dataset.manifest
    return dict(zip(table["sample_id"], table["path"], strict=True))


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
