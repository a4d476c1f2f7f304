"""The sample gallery: a grid per class with paging and filters, and one image enlarged with its facts.

A fragment: paging or filtering reruns only the gallery, and only the visible page's thumbnails are
read (each encoded once, then cached by path + mtime).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from studio import state
from studio.loaders import image_format, thumbnail
from studio.widgets.common import format_bytes

RANGE_PROPERTIES = ("width", "height", "aspect", "brightness")
MAX_CLASS_GRIDS = 12  # grids drawn per page when many classes are picked
MAX_META_VALUES = 50  # a metadata column with more distinct values gets no value filter
THUMB_SIDE = 128
LARGE_SIDE = 384


def filter_samples(table: pd.DataFrame, *, classes: Sequence[str] = (), meta: dict[str, Sequence] | None = None,
                   ranges: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Rows of ``table`` kept by the filters (empty ``classes`` or value lists keep everything). Vectorized."""
    keep = np.ones(len(table), dtype=bool)
    if classes:
        keep &= table["label"].astype(str).isin([str(c) for c in classes]).to_numpy()
    for column, values in (meta or {}).items():
        if values:
            keep &= table[column].astype(str).isin([str(v) for v in values]).to_numpy()
    for column, (low, high) in (ranges or {}).items():
        col = table[column].to_numpy(dtype=float)
        keep &= (col >= low) & (col <= high)
    return table[keep]


def page_of(filtered: pd.DataFrame, classes: Sequence[str], *, page: int, per_class: int) -> dict[str, pd.DataFrame]:
    """The rows shown on ``page`` (1-based): the ``page``-th slice of ``per_class`` images of each class."""
    start = (page - 1) * per_class
    labels = filtered["label"].astype(str)
    wanted = filtered[labels.isin(list(classes)).to_numpy()]
    by_class = {str(c): g for c, g in wanted.groupby(wanted["label"].astype(str), sort=False)}
    return {c: by_class[c].iloc[start:start + per_class] for c in classes if c in by_class}


@st.fragment
def gallery(table: pd.DataFrame, classes: list[str], metadata_columns: list[str], problems: pd.DataFrame) -> None:
    """``table``: one row per training image (studio.loaders.training_table); ``problems``: kind, path, message."""
    picked, meta, ranges, per_row = _filters(table, classes, metadata_columns)
    filtered = filter_samples(table, classes=picked, meta=meta, ranges=ranges)
    if filtered.empty:
        st.warning("No image matches these filters. Widen the ranges or pick other values.", icon=":material/filter_alt_off:")
        return
    counts = filtered["label"].astype(str).value_counts()
    shown = [c for c in (picked or classes) if c in counts.index]
    per_class = per_row if len(shown) > 1 else per_row * 4
    pages = max(1, math.ceil(int(counts.max()) / per_class))
    st.session_state[state.GALLERY_PAGE] = min(max(int(st.session_state.get(state.GALLERY_PAGE, 1)), 1), pages)
    _pager(pages, len(filtered), len(shown))
    grid_col, detail_col = st.columns([3, 1], gap="medium")
    blocks = page_of(filtered, shown[:MAX_CLASS_GRIDS], page=st.session_state[state.GALLERY_PAGE], per_class=per_class)
    visible = [sid for rows in blocks.values() for sid in rows["sample_id"].astype(str)]
    if st.session_state.get(state.GALLERY_SELECTED) not in visible and visible:
        st.session_state[state.GALLERY_SELECTED] = visible[0]  # something is always shown enlarged
    with grid_col:
        for label, rows in blocks.items():
            total = int(counts[label])
            st.markdown(f"**Class {label}** · {total:,} image{'s' if total != 1 else ''}")
            _grid(rows, per_row)
        if len(shown) > MAX_CLASS_GRIDS:
            st.caption(f"Showing {MAX_CLASS_GRIDS} of {len(shown)} classes: pick classes above to see the others.")
    with detail_col:
        _details(table, metadata_columns, problems)


def _filters(table: pd.DataFrame, classes: list[str], metadata_columns: list[str]):
    c1, c2 = st.columns([3, 1])
    picked = c1.multiselect("Classes", classes, key=state.GALLERY_CLASSES, placeholder="All classes",
                            on_change=state.reset_gallery_page)
    per_row = c2.select_slider("Images per row", options=[4, 6, 8, 10, 12], value=8, key=state.GALLERY_PER_ROW,
                               on_change=state.reset_gallery_page)
    meta: dict[str, list] = {}
    ranges: dict[str, tuple[float, float]] = {}
    with st.expander("More filters: metadata values and image properties"):
        filterable = [c for c in metadata_columns if table[c].nunique(dropna=True) <= MAX_META_VALUES]
        cols = st.columns(max(1, min(len(filterable), 4))) if filterable else []
        for i, column in enumerate(filterable):
            values = sorted(table[column].dropna().astype(str).unique().tolist())
            meta[column] = cols[i % len(cols)].multiselect(
                column, values, key=state.GALLERY_META_PREFIX + column, placeholder="Any value",
                on_change=state.reset_gallery_page)
        cols = st.columns(len(RANGE_PROPERTIES))
        for col, prop in zip(cols, RANGE_PROPERTIES, strict=True):
            if prop not in table.columns:
                continue
            values = table[prop].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0 or values.min() == values.max():
                col.caption(f"{prop.capitalize()}: {values.min():.4g} for every image" if values.size
                            else f"{prop.capitalize()}: unknown")
                continue
            low, high = float(values.min()), float(values.max())
            is_int = bool(np.all(np.mod(values, 1) == 0))
            chosen = col.slider(prop.capitalize(), low if not is_int else int(low), high if not is_int else int(high),
                                (low, high) if not is_int else (int(low), int(high)),
                                key=state.GALLERY_RANGE_PREFIX + prop, on_change=state.reset_gallery_page)
            if tuple(chosen) != (low, high):
                ranges[prop] = (float(chosen[0]), float(chosen[1]))
    return picked, meta, ranges, per_row


def _step_page(delta: int, pages: int) -> None:
    page = int(st.session_state.get(state.GALLERY_PAGE, 1)) + delta
    st.session_state[state.GALLERY_PAGE] = min(max(page, 1), pages)


def _pager(pages: int, n_images: int, n_classes: int) -> None:
    page = st.session_state[state.GALLERY_PAGE]
    c1, c2, c3, c4 = st.columns([1, 1, 1, 4], vertical_alignment="center")
    c1.button("Previous", icon=":material/chevron_left:", key="data_gallery_prev", disabled=page <= 1,
              on_click=_step_page, args=(-1, pages), width="stretch")
    c2.button("Next", icon=":material/chevron_right:", key="data_gallery_next", disabled=page >= pages,
              on_click=_step_page, args=(1, pages), width="stretch")
    c3.number_input("Page", min_value=1, max_value=pages, key=state.GALLERY_PAGE, label_visibility="collapsed")
    c4.caption(f"Page {page} of {pages} · {n_images:,} matching image{'s' if n_images != 1 else ''} "
               f"in {n_classes} class{'es' if n_classes != 1 else ''}")


def _grid(rows: pd.DataFrame, per_row: int) -> None:
    cols = st.columns(per_row)
    for i, (sample_id, path) in enumerate(zip(rows["sample_id"].astype(str), rows["path"], strict=True)):
        with cols[i % per_row]:
            data = thumbnail(path, THUMB_SIDE)
            if data is None:
                st.error("unreadable", icon=":material/broken_image:")
            else:
                st.image(data, width="stretch", output_format=image_format(data))
            st.button(_short_name(sample_id), key=f"data_gallery_pick_{sample_id}", type="tertiary",
                      help=f"Enlarge {sample_id}", on_click=_select, args=(sample_id,))


def _select(sample_id: str) -> None:
    st.session_state[state.GALLERY_SELECTED] = sample_id


def _short_name(sample_id: str, limit: int = 16) -> str:
    name = Path(str(sample_id)).stem
    return name if len(name) <= limit else name[: limit - 1] + "…"


def sample_facts(row: pd.Series, metadata_columns: Sequence[str]) -> pd.DataFrame:
    """The facts of one image as a two-column table (fact, value), skipping what the scan did not record."""
    facts: list[tuple[str, str]] = [("Sample id", str(row["sample_id"])), ("Class", str(row["label"]))]
    if pd.notna(row.get("group")) and row.get("group") is not None:
        facts.append(("Group", str(row["group"])))
    facts += [(c, str(row[c])) for c in metadata_columns]
    if pd.notna(row.get("width")):
        facts.append(("Size", f"{int(row['width'])} × {int(row['height'])} px"))
    for key, name in (("format", "Format"), ("mode", "Mode"), ("bit_depth", "Bits per channel"),
                      ("exif_orientation", "EXIF orientation")):
        if key in row and pd.notna(row[key]):
            facts.append((name, str(row[key])))
    if "file_size" in row and pd.notna(row["file_size"]):
        facts.append(("File size", format_bytes(float(row["file_size"]))))
    if "brightness" in row and pd.notna(row["brightness"]):
        facts.append(("Brightness", f"{row['brightness']:.1f}"))
    if all(k in row and pd.notna(row[k]) for k in ("mean_r", "mean_g", "mean_b")):
        facts.append(("Mean R, G, B", f"{row['mean_r']:.0f}, {row['mean_g']:.0f}, {row['mean_b']:.0f}"))
    if "error" in row and isinstance(row["error"], str) and row["error"]:
        facts.append(("Read error", row["error"]))
    facts.append(("File", str(row["path"])))
    return pd.DataFrame(facts, columns=["Fact", "Value"])


def problems_of(path: str, sample_id: str, problems: pd.DataFrame) -> pd.DataFrame:
    """Problems that name this image (by absolute path, sample id or a path relative to the dataset)."""
    if problems.empty:
        return problems
    hit = problems["path"].astype(str).map(lambda p: p in (path, sample_id) or path.endswith("/" + p))
    return problems[hit.to_numpy(dtype=bool)]


def _details(table: pd.DataFrame, metadata_columns: list[str], problems: pd.DataFrame) -> None:
    sample_id = st.session_state.get(state.GALLERY_SELECTED)
    match = table[table["sample_id"].astype(str) == str(sample_id)] if sample_id is not None else table.iloc[:0]
    if match.empty:
        return
    row = match.iloc[0]
    data = thumbnail(row["path"], LARGE_SIDE)
    if data is not None:
        st.image(data, caption=f"{row['sample_id']} · click a name under a thumbnail to show another image",
                 width="stretch", output_format=image_format(data))
    facts = sample_facts(row, metadata_columns)
    st.dataframe(facts, hide_index=True, width="stretch", height=(len(facts) + 1) * 35 + 3)  # no inner scrollbar
    mine = problems_of(str(row["path"]), str(row["sample_id"]), problems)
    for message in mine["message"].head(5):
        st.warning(message, icon=":material/report:")

