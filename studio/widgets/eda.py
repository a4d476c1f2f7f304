"""Sections of the Data page: each reads its widgets, takes cached tables, and draws with the figure builders."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine.data import Dataset
from engine.data.problems import SEVERITIES, SEVERITY_DESCRIPTIONS, SEVERITY_LABELS
from studio import loaders, state
from studio.figures.data import (
    META_KINDS,
    PROPERTY_LABELS,
    class_colors,
    class_distribution_figure,
    metadata_figure,
    property_histogram_figure,
    split_distribution_figure,
)
from studio.widgets.progress import ProgressBar

MAX_PROBLEM_ROWS = 200  # rows drawn (with thumbnails) in the problems table; the count says how many exist
PROBLEM_THUMB_SIDE = 64


def scan_or_stop(dataset: Dataset, token: loaders.ScanToken):
    """The dataset's scan: from memory, else run now with a progress bar (the engine's disk cache helps)."""
    scan = loaders.cached_scan(token)
    if scan is not None:
        return scan
    from engine.errors import EngineError

    bar = ProgressBar("Scanning the images (size, colour, duplicates)...")
    try:
        scan = loaders.run_scan(dataset, token, progress=bar)
    except EngineError as e:
        bar.done()
        st.error(f"**The images could not be scanned.** {e}", icon=":material/error:")
        st.stop()
    bar.done()
    return scan


def typical_size(table: pd.DataFrame) -> tuple[str, str]:
    """The most common image size and how common it is, as (value, caption)."""
    sizes = table[["width", "height"]].dropna()
    if sizes.empty:
        return "unknown", "no image could be read"
    counts = sizes.astype(int).value_counts()
    (w, h), n = counts.index[0], int(counts.iloc[0])
    share = n / len(sizes)
    if share >= 0.5:
        return f"{w} × {h}", f"{share:.0%} of images" if share < 1 else "every image"
    return f"{int(sizes['width'].median())} × {int(sizes['height'].median())}", f"median; {len(counts):,} sizes"


def overview(dataset: Dataset, table: pd.DataFrame, dist: pd.DataFrame, problems: pd.DataFrame) -> None:
    from engine.data.eda import imbalance_ratio

    ratio = imbalance_ratio(dist.set_index("label")["count"])
    size, size_note = typical_size(table)
    cols = st.columns(5)
    test = len(dataset.test_manifest)
    cols[0].metric("Training images", f"{len(dataset.manifest):,}", help=f"{test:,} test images" if test else None,
                   border=True)
    cols[1].metric("Classes", f"{dataset.num_classes:,}", border=True)
    cols[2].metric("Imbalance ratio", f"{ratio:.1f} : 1" if np.isfinite(ratio) else "∞", border=True,
                   help="Images in the largest class per image in the smallest class. 1 : 1 is perfectly balanced.")
    cols[3].metric("Typical image size", size, help=size_note, border=True)
    by_severity = problems["severity"].value_counts()
    minor = int(by_severity.sum() - by_severity.get("must_fix", 0))
    rest = ", ".join(f"{int(by_severity[s]):,} {SEVERITY_LABELS[s].lower()}" for s in SEVERITIES[1:] if s in by_severity)
    cols[4].metric("Problems to fix", f"{int(by_severity.get('must_fix', 0)):,}", border=True,
                   delta=f"{minor:,} minor" if minor else None, delta_color="off", delta_arrow="off",
                   help="Must fix: corrupt images, test images that are also training images, copies with conflicting "
                        "labels, missing files or files outside the dataset folder. "
                        + (f"Also found: {rest} (duplicates, tiny or extreme images, mode conversions), grouped "
                           "below them in the Problems tab." if minor else ""))


def classes_section(dataset: Dataset, token: loaders.ScanToken, dist: pd.DataFrame) -> None:
    colors = class_colors(dataset.classes)
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    sort_by = c1.segmented_control("Sort by", ["class", "count"], default="class", key=state.DATA_SORT,
                                   required=True)
    shares = c2.segmented_control("Show", ["counts", "shares"], default="counts", key=state.DATA_SHARES,
                                  required=True) == "shares"
    log_y = c3.toggle("Log scale", key=state.DATA_LOG, disabled=shares)
    st.plotly_chart(class_distribution_figure(dist, sort_by=sort_by, shares=shares, log_y=log_y and not shares,
                                              colors=colors), key="data_class_chart")
    splits = loaders.splits_for(dataset, state.workspace())
    if not splits:
        st.caption("Once a training run has split the data into folds, each fold's class make-up shows here.")
        return
    run_id = st.selectbox("Split of run", list(splits), key=state.DATA_SPLIT_RUN)
    path = splits[run_id]
    counts = loaders.split_distribution_frame(path, loaders.mtime(path), token, dataset)
    st.plotly_chart(split_distribution_figure(counts, colors=colors), key="data_split_chart")


def metadata_section(dataset: Dataset, token: loaders.ScanToken) -> None:
    columns = [c for c in dataset.metadata_columns if c in dataset.manifest.columns]
    if dataset.manifest["group"].notna().any():
        columns = ["group", *columns]
    if not columns:
        st.info("This dataset has no metadata columns: a CSV layout keeps every extra column of the CSV "
                "(for example a patient's age or the camera) as metadata.", icon=":material/info:")
        return
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    column = c1.selectbox("Metadata column", columns, key=state.DATA_META_COLUMN)
    kind = c2.segmented_control("Draw as", list(META_KINDS), default=META_KINDS[0], key=state.DATA_META_KIND,
                                required=True)
    normalize = c3.toggle("Shares", key=state.DATA_META_NORMALIZE, help="Each value's images add up to 100 %.")
    crosstab = loaders.metadata_crosstab(token, column, dataset)
    st.plotly_chart(metadata_figure(crosstab, column=column, kind=kind, normalize=normalize,
                                    colors=class_colors(dataset.classes)), key="data_meta_chart")


def properties_section(dataset: Dataset, table: pd.DataFrame) -> None:
    props = [p for p in PROPERTY_LABELS if p in table.columns]
    varying = [p for p in props if table[p].nunique(dropna=True) > 1]
    c1, c2 = st.columns([1, 3])
    prop = c1.radio("Property", props, key=state.DATA_PROPERTY, index=props.index(varying[0]) if varying else 0,
                    format_func=lambda p: PROPERTY_LABELS[p].split(" (")[0])
    picked = c2.multiselect("Classes", dataset.classes, default=dataset.classes[:10], key=state.DATA_PROPERTY_CLASSES,
                            placeholder="All classes")
    values = table[prop].dropna()
    name = PROPERTY_LABELS[prop].split(" (")[0].lower()
    if len(values):
        c1.caption(f"{name}: min {values.min():.4g} · median {values.median():.4g} · max {values.max():.4g}")
    if prop not in varying:
        c2.info(f"Every readable image has the same {name}: {values.min():.4g}." if len(values) else
                f"No image could be read, so there is no {name} to show.", icon=":material/info:")
        return
    fig = property_histogram_figure(table[prop].to_numpy(dtype=float), table["label"].to_numpy(), prop=prop,
                                    classes=picked or dataset.classes, colors=class_colors(dataset.classes))
    c2.plotly_chart(fig, key="data_property_chart")


def problems_section(dataset: Dataset, problems: pd.DataFrame) -> None:
    """The problems grouped by severity, most serious first; each group a list with thumbnails, computed when open."""
    if problems.empty:
        st.success("No problem found: every image decodes, no duplicates, no tiny or extreme images.",
                   icon=":material/check_circle:")
        return
    from engine.data.problems import PROBLEM_KINDS

    counts = problems["kind"].value_counts()
    order = problems.drop_duplicates("kind")["kind"].tolist()  # the table is sorted by severity
    kinds = st.multiselect(
        "Kinds", order, key=state.DATA_PROBLEM_KINDS, placeholder="All kinds",
        format_func=lambda k: f"{k} ({counts[k]:,})",
        help="\n".join(f"- **{k}**: {PROBLEM_KINDS.get(k, '')}" for k in order),
    )
    shown = problems[problems["kind"].isin(kinds)] if kinds else problems
    if not (shown["severity"] == "must_fix").any():
        st.success("Nothing must be fixed" + (" among these kinds." if kinds else ": every image decodes, no "
                   "test image is a training image, no copies with conflicting labels, no missing file."),
                   icon=":material/check_circle:")
    for severity in SEVERITIES:
        rows = shown[shown["severity"] == severity]
        if rows.empty:
            continue
        group = st.expander(f"**{SEVERITY_LABELS[severity]}** · {len(rows):,} ({_kind_counts(rows)})",
                            expanded=severity == "must_fix",
                            key=state.DATA_PROBLEM_GROUP_PREFIX + severity, on_change="rerun")
        with group:
            if group.open:
                st.caption(SEVERITY_DESCRIPTIONS[severity])
                _problem_list(dataset, rows, key=f"data_problems_{severity}")


def _kind_counts(rows: pd.DataFrame) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in rows["kind"].value_counts().items())


def _problem_list(dataset: Dataset, rows: pd.DataFrame, *, key: str) -> None:
    head = rows.head(MAX_PROBLEM_ROWS)
    thumbs = [_data_uri(_image_of(p, dataset)) for p in head["path"]]
    files = [_relative(p, dataset.root) for p in head["path"]]
    st.dataframe(
        head.assign(image=thumbs, path=files)[["image", "kind", "message", "path"]], hide_index=True,
        column_config={
            "image": st.column_config.ImageColumn("Image", width="small"),
            "kind": st.column_config.TextColumn("Kind", width=150),
            "message": st.column_config.TextColumn("What is wrong", width="large"),
            "path": st.column_config.TextColumn("File", width="medium"),
        },
        row_height=PROBLEM_THUMB_SIDE + 8, height=min(len(head), 8) * (PROBLEM_THUMB_SIDE + 8) + 40, key=key,
    )
    if len(rows) > MAX_PROBLEM_ROWS:
        st.caption(f"Showing the first {MAX_PROBLEM_ROWS} of {len(rows):,}; pick a kind to narrow the list.")


def _relative(path: str, root: Path) -> str:
    """A path as the user knows it: relative to the dataset folder when inside it."""
    p = Path(path)
    if p.is_absolute() and p.is_relative_to(root):
        return p.relative_to(root).as_posix()
    return str(path)


def _image_of(problem_path: str, dataset: Dataset) -> str | None:
    """The image file a problem names (absolute, or relative to the dataset or its image folders), if any."""
    first = str(problem_path).split(",")[0].strip()
    candidates = [Path(first), dataset.root / first, dataset.root / dataset.spec.train.images / first]
    if dataset.spec.test is not None:
        candidates.append(dataset.root / dataset.spec.test.images / first)
    for c in candidates:
        if c.is_file():
            return str(c)
    return None


def _data_uri(path: str | None) -> str | None:
    if path is None:
        return None
    data = loaders.thumbnail(path, PROBLEM_THUMB_SIDE)
    if data is None:
        return None
    mime = f"image/{loaders.image_format(data).lower()}"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
