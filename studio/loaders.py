"""Cached loaders: the studio's only way to reach engine results that come from files.

Keyed by small arguments (a path and its modification time), never by big objects. Big read-only
results (a dataset, a scan table) live in ``st.cache_resource`` and must not be mutated; small
derived tables go through ``st.cache_data`` with a hashable ``token`` standing for the big input.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine.data import Dataset, load_rgb, open_dataset
from engine.errors import EngineError

# A scan is identified by (dataset path, spec mtime, workspace, generation); "generation" moves on
# when the user asks for a rescan, so the in-memory copy is dropped without touching other sessions'.
ScanToken = tuple[str, float, str, int]


def mtime(path: str | os.PathLike) -> float:
    """Modification time of a file, or of a dataset folder's spec; 0.0 when it cannot be read."""
    p = Path(path)
    target = p / "dataset.yaml" if p.is_dir() else p
    try:
        return os.stat(target).st_mtime
    except OSError:
        return 0.0


def dataset_mtime(path: str | os.PathLike) -> float:
    """When a dataset last changed as the studio sees it: its spec, or its label overrides file (Review page)."""
    from engine.data.overrides import overrides_path

    return max(mtime(path), mtime(overrides_path(path)))


# --- dataset -----------------------------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Reading the dataset...")
def _load_dataset(path: str, mtime: float) -> Dataset:
    return open_dataset(path)


def load_dataset_cached(path: str) -> Dataset:
    """The dataset at ``path`` (spec YAML or folder), re-read when its spec or overrides file changes. Do not mutate."""
    return _load_dataset(path, dataset_mtime(path))


# --- scan ----------------------------------------------------------------------------------------------
class _ScanStore:
    """Finished scans by token, a few at a time. A store (not a cached function) so the first scan can
    drive a progress bar from this script run while later runs read the stored result."""

    def __init__(self, max_entries: int = 4) -> None:
        self.lock = threading.Lock()
        self.results: OrderedDict[ScanToken, object] = OrderedDict()
        self.generation: dict[tuple[str, str], int] = {}
        self.max_entries = max_entries

    def put(self, token: ScanToken, result) -> None:
        with self.lock:
            self.results[token] = result
            self.results.move_to_end(token)
            while len(self.results) > self.max_entries:
                self.results.popitem(last=False)


@st.cache_resource
def _scan_store() -> _ScanStore:
    return _ScanStore()


def scan_token(dataset_path: str, workspace: Path) -> ScanToken:
    gen = _scan_store().generation.get((dataset_path, str(workspace)), 0)
    return (dataset_path, dataset_mtime(dataset_path), str(workspace), gen)


def cached_scan(token: ScanToken):
    """The stored scan for ``token``, or None when it has not run yet in this studio process."""
    return _scan_store().results.get(token)


def run_scan(dataset: Dataset, token: ScanToken, progress: Callable[[int, int], None] | None = None):
    """Scan the dataset's images (the engine's on-disk cache makes a repeat cheap) and store the result."""
    from engine.data.scan import scan_dataset

    result = scan_dataset(dataset, workspace=token[2], progress=progress)
    _scan_store().put(token, result)
    return result


def forget_scan(dataset_path: str, workspace: Path) -> None:
    """Drop the in-memory scan so the next run scans again (new or changed images are picked up)."""
    store = _scan_store()
    with store.lock:
        key = (dataset_path, str(workspace))
        store.generation[key] = store.generation.get(key, 0) + 1


@st.cache_resource(max_entries=4)
def training_table(token: ScanToken, _dataset: Dataset) -> pd.DataFrame:
    """Training rows of the scan joined with the manifest's label, group and metadata (one row per image).

    Read-only: shared between sessions.
    """
    scan = cached_scan(token)
    table = scan.table
    train = table[table["split"] == "train"].drop(columns=["label", "path"], errors="ignore")
    keep = ["sample_id", "path", "label", "label_index", "group", *_dataset.metadata_columns]
    return _dataset.manifest[keep].merge(train, on="sample_id", how="left")


@st.cache_resource(max_entries=8, show_spinner=False)
def problems_frame(token: ScanToken) -> pd.DataFrame:
    """Every problem of the scanned dataset (from reading the spec, and found in the scan): kind, path, message.

    Read-only (a resource: a dataset with 10,000 duplicates is not copied on every rerun)."""
    from engine.data.eda import problems_table

    return problems_table(cached_scan(token).problems)


@st.cache_data(max_entries=8)
def class_distribution_frame(token: ScanToken, _dataset: Dataset) -> pd.DataFrame:
    from engine.data.eda import class_distribution

    return class_distribution(_dataset.manifest, _dataset.classes)


@st.cache_data(max_entries=16)
def metadata_crosstab(token: ScanToken, column: str, _dataset: Dataset) -> pd.DataFrame:
    from engine.data.eda import metadata_vs_label

    return metadata_vs_label(_dataset.manifest, column)


# --- thumbnails -------------------------------------------------------------------------------------
# cache_resource, not cache_data: bytes are immutable, and a hit then costs no copy (a gallery page asks ~100).
@st.cache_resource(max_entries=5000, show_spinner=False)
def _thumbnail(path: str, mtime: float, side: int) -> bytes | None:
    try:
        rgb = load_rgb(path, max_side=side)
    except (EngineError, OSError, ValueError):
        return None
    return encode_thumbnail(rgb, side)


def encode_thumbnail(rgb: np.ndarray, side: int) -> bytes:
    """Small image bytes for the browser: tiny images are scaled up by a whole factor (crisp pixels) as PNG;
    anything else becomes a JPEG whose longer side is at most ``side``."""
    from PIL import Image

    img = Image.fromarray(rgb)
    factor = side // max(img.size)
    buf = io.BytesIO()
    if factor >= 2:
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
        img.save(buf, format="PNG", optimize=False)
    elif max(img.size) <= 64:
        img.save(buf, format="PNG")
    else:
        img.thumbnail((side, side), Image.Resampling.BILINEAR)
        img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def image_format(data: bytes) -> str:
    """"PNG" or "JPEG": pass it to ``st.image(..., output_format=...)``, else Streamlit re-encodes PNG bytes as JPEG
    on every call (slow, and it blurs the crisp pixels of a scaled-up small image)."""
    return "PNG" if data[:8] == b"\x89PNG\r\n\x1a\n" else "JPEG"


def thumbnail(path: str, side: int = 128) -> bytes | None:
    """Cached thumbnail bytes of an image (keyed by path + mtime), or None when it cannot be decoded."""
    try:
        modified = os.stat(path).st_mtime
    except OSError:
        modified = 0.0
    return _thumbnail(path, modified, side)


# --- runs on disk: splits and jobs --------------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def _split_ids(run_dir: str, mtime: float) -> frozenset[str] | None:
    from engine.runs import read_split

    try:
        return frozenset(read_split(run_dir)["sample_id"].astype(str))
    except (EngineError, KeyError):
        return None


def splits_for(dataset: Dataset, workspace: Path) -> dict[str, str]:
    """Runs in the workspace whose split covers this dataset: run id -> run directory (newest split first)."""
    from engine.runs import run_dirs, split_path

    ids = set(dataset.manifest["sample_id"].astype(str))
    found = []
    for run_dir in run_dirs(workspace, having=split_path):
        m = mtime(split_path(run_dir))
        split_ids = _split_ids(str(run_dir), m)
        if split_ids and split_ids <= ids:
            found.append((m, run_dir.name, str(run_dir)))
    return {run_id: path for _, run_id, path in sorted(found, reverse=True)}


@st.cache_data(max_entries=16)
def split_distribution_frame(run_dir: str, split_mtime: float, token: ScanToken, _dataset: Dataset) -> pd.DataFrame:
    """Class make-up of each fold of a run's split (engine.data.eda.split_distribution); a split never changes."""
    from engine.data.eda import split_distribution
    from engine.runs import read_split

    return split_distribution(_dataset.manifest, read_split(run_dir))


def active_jobs(workspace: Path) -> list[dict]:
    """Runs that are queued or running, newest first: dicts with run_id, state, progress (0..1), folds text.

    From the run store's listing (liveness applied), so a job whose process died is not listed.
    """
    from engine.runs import ACTIVE_STATES, list_run_records

    jobs = [{"run_id": r.run_id, "state": r.state, "progress": min(max(r.progress, 0.0), 1.0),
             "folds": f"{r.folds_done}/{len(r.fold_states)} folds" if r.fold_states else "",
             "updated_at": str(r.status.get("updated_at") or "")}
            for r in list_run_records(workspace, states=ACTIVE_STATES)]
    return sorted(jobs, key=lambda j: j["updated_at"], reverse=True)


def damaged_runs(workspace: Path) -> list[dict]:
    """Runs whose status cannot be read: dicts with run_id and error (what is wrong)."""
    from engine.runs import DAMAGED, list_run_records

    return [{"run_id": r.run_id, "error": r.error} for r in list_run_records(workspace, states=[DAMAGED])]
