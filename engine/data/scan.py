"""Image scan: the facts of every image of a dataset, read in parallel and cached incrementally.

For each file: width / height (as shown upright, EXIF orientation applied), mode, channels, bit
depth, format, file size, EXIF orientation, a SHA-1 of the bytes (exact duplicates), ImageHash's
perceptual hash (near duplicates), and per-channel mean / std and brightness measured on a small
thumbnail. Why it is fast:

- each file is read once; the SHA-1 and the decoder work on the same bytes;
- the header gives size, mode and format without decoding pixels;
- only a thumbnail is decoded: a JPEG is decoded at 1/2..1/8 scale by the decoder itself
  (``Image.draft``), so most of the inverse DCT and colour conversion is skipped;
- files are spread over worker processes in chunks;
- results are cached in a Parquet file keyed by (path, size, modification time): a second scan of an
  unchanged dataset is one ``stat`` per file and a join, and a changed file is rescanned alone.

A file that cannot be read or decoded still gets a row: ``error`` says why (the header facts are
kept when the header could be read).
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from engine.data.hashing import perceptual_hash
from engine.data.images import SWAPPING_ORIENTATIONS, bit_depth, decode_rgb, exif_orientation
from engine.data.manifest import Dataset
from engine.data.problems import Problem
from engine.errors import DatasetError

log = logging.getLogger(__name__)

SCAN_VERSION = 1  # part of the cache file's key: bump it when a column's meaning changes
THUMB_SIDE = 64  # longer side of the thumbnail the statistics and the perceptual hash are measured on
_DRAFT_SIDE = 32  # JPEGs decode at the smallest DCT scale keeping both sides >= this (phash needs 32x32)
_INLINE_LIMIT = 48  # fewer files than this are scanned in the calling process (no pool start-up)

# Facts of one file (what scan_images returns), then the dataset columns scan_dataset adds in front.
FILE_COLUMNS = [
    "path", "width", "height", "aspect", "mode", "channels", "bit_depth", "format", "file_size",
    "exif_orientation", "sha1", "phash", "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "brightness",
    "error",
]
SCAN_COLUMNS = ["sample_id", "split", "label", *FILE_COLUMNS]
_INT_COLUMNS = ["width", "height", "channels", "bit_depth", "file_size", "exif_orientation"]
_FLOAT_COLUMNS = ["aspect", "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "brightness"]
_TEXT_COLUMNS = ["path", "mode", "format", "sha1", "phash", "error"]
_CACHE_KEY_COLUMNS = ["path", "file_size", "mtime_ns"]

Progress = Callable[[int, int], None]


@dataclass
class ScanResult:
    """A dataset's scan: one row per image (``SCAN_COLUMNS``), every problem found, and the cache's share."""

    table: pd.DataFrame
    problems: list[Problem]
    rescanned: int
    cached: int


# ---------------------------------------------------------------- one file (runs in the worker processes)


def scan_file(path: str) -> dict:
    """The facts of one image file as a dict of ``FILE_COLUMNS`` (``error`` set when it is unusable)."""
    row: dict = dict.fromkeys(FILE_COLUMNS)
    row["path"] = path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        row["error"] = f"cannot be read ({type(e).__name__}: {e.strerror or e})"
        return row
    row["file_size"] = len(data)
    row["sha1"] = hashlib.sha1(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, odd-metadata warnings
            img = Image.open(io.BytesIO(data))
    except Exception as e:  # UnidentifiedImageError, DecompressionBombError, ...
        row["error"] = f"cannot be opened as an image ({type(e).__name__}: {e})"
        return row
    with img:
        stored_size = img.size  # before decoding: a JPEG's draft shrinks img.size to the decoded scale
        row.update(format=img.format, mode=img.mode, channels=len(img.getbands()), bit_depth=bit_depth(img))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                thumb = decode_rgb(img, max_side=THUMB_SIDE, draft_side=_DRAFT_SIDE)
            error = None
        except Exception as e:
            thumb, error = None, f"is corrupt or truncated ({type(e).__name__}: {e})"
        orientation = exif_orientation(img)
    row.update(exif_orientation=orientation, error=error)
    w, h = stored_size
    row["width"], row["height"] = (h, w) if orientation in SWAPPING_ORIENTATIONS else (w, h)
    row["aspect"] = row["width"] / row["height"] if row["height"] else None
    return row if thumb is None else _fill_pixels(row, thumb)


def _fill_pixels(row: dict, thumb: np.ndarray) -> dict:
    # OpenCV's meanStdDev: one pass in C, about 50x cheaper than numpy's mean + std on a 64x48x3 array.
    mean, std = (v.ravel() for v in cv2.meanStdDev(thumb))
    row.update(
        mean_r=float(mean[0]), mean_g=float(mean[1]), mean_b=float(mean[2]),
        std_r=float(std[0]), std_g=float(std[1]), std_b=float(std[2]),
        # ITU-R BT.601 luma: the brightness a person sees, not the plain channel average.
        brightness=float(0.299 * mean[0] + 0.587 * mean[1] + 0.114 * mean[2]),
        phash=perceptual_hash(thumb),
    )
    return row


def _scan_chunk(paths: list[str]) -> list[dict]:
    return [scan_file(p) for p in paths]


# ---------------------------------------------------------------- many files, in parallel, with the cache


def default_workers() -> int:
    """Worker processes for a scan: the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _pool_context():
    # fork starts workers in milliseconds with the engine already imported; spawn would re-import pandas
    # and Pillow in every worker (about a second each). macOS and Windows get their platform default.
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def _scan_files(paths: list[str], workers: int, report: Callable[[int], None]) -> list[dict]:
    """Scan ``paths`` (in this process or in a pool), calling ``report(k)`` after each k files; rows in order."""
    if workers <= 1 or len(paths) < _INLINE_LIMIT:
        rows = []
        for p in paths:
            rows.append(scan_file(p))
            report(1)
        return rows
    # Chunks small enough to balance the workers and keep the progress moving, big enough to amortize
    # the round trip to the pool.
    size = int(min(256, max(8, len(paths) // (workers * 8))))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    results: list[list[dict] | None] = [None] * len(chunks)
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_pool_context()) as pool:
            futures = {pool.submit(_scan_chunk, chunk): k for k, chunk in enumerate(chunks)}
            for fut in as_completed(futures):
                k = futures[fut]
                results[k] = fut.result()
                report(len(chunks[k]))
    except BrokenProcessPool as e:  # a worker was killed (out of memory on a huge image, or a crash)
        raise DatasetError(
            f"A process reading images died ({e}); most often the machine ran out of memory on a very large "
            "image. Scan again with fewer workers (--workers 1), or remove the largest images."
        ) from e
    return [row for chunk in results for row in chunk]


def _stat_keys(paths: list[str]) -> pd.DataFrame:
    sizes = np.full(len(paths), -1, dtype=np.int64)
    mtimes = np.full(len(paths), -1, dtype=np.int64)
    for k, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        sizes[k], mtimes[k] = st.st_size, st.st_mtime_ns
    return pd.DataFrame({"path": pd.array(paths, dtype="str"), "file_size": sizes, "mtime_ns": mtimes})


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``FILE_COLUMNS`` with stable dtypes: nullable ints, floats (NaN when unknown), text (missing when unknown)."""
    frame = frame.reindex(columns=[*FILE_COLUMNS, *(["mtime_ns"] if "mtime_ns" in frame.columns else [])])
    for c in _INT_COLUMNS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("Int64")
    for c in _FLOAT_COLUMNS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in _TEXT_COLUMNS:
        frame[c] = frame[c].astype("str")  # missing stays missing (NaN), not the text "None"
    return frame


def _read_cache(cache_path: Path | None) -> pd.DataFrame | None:
    if cache_path is None or not cache_path.is_file():
        return None
    try:
        cache = pd.read_parquet(cache_path)
    except Exception as e:  # a cache written by a crashed or older process: start again
        log.warning("Ignoring the unreadable scan cache %s (%s)", cache_path, e)
        return None
    if set(cache.columns) != {*FILE_COLUMNS, "mtime_ns"}:
        log.warning("Ignoring the scan cache %s: its columns are from another version", cache_path)
        return None
    return cache


def _write_cache(cache_path: Path, old: pd.DataFrame | None, current: pd.DataFrame) -> None:
    from engine.io import atomic_write_parquet

    keep = current[current["mtime_ns"] >= 0]
    if old is not None:  # keep other files' rows (a scan of a subset must not forget the rest)
        keep = pd.concat([old[~old["path"].isin(keep["path"])], keep], ignore_index=True)
    try:
        atomic_write_parquet(cache_path, keep.reset_index(drop=True))
    except OSError as e:  # a read-only workspace only costs the next scan its speed
        log.warning("Could not write the scan cache %s (%s)", cache_path, e)


def scan_images(paths: Sequence[str], *, cache_path: Path | None = None, workers: int | None = None,
                progress: Progress | None = None) -> tuple[pd.DataFrame, int]:
    """Scan image files; return ``(rows, rescanned)``.

    ``rows``: one row per path in the order given, columns ``FILE_COLUMNS``. ``rescanned``: how many files
    were read (the rest came from ``cache_path``, a Parquet file keyed by path, size and modification time,
    which is updated). ``workers``: processes (default: every core; 1 scans in this process).
    ``progress(done, total)`` is called as files finish (cached files count as done at once).
    """
    unique = list(dict.fromkeys(os.fspath(p) for p in paths))
    total = len(unique)
    keys = _stat_keys(unique)
    old = _read_cache(Path(cache_path) if cache_path is not None else None)
    if old is not None and total:
        looked_up = keys.merge(old, on=_CACHE_KEY_COLUMNS, how="left", indicator=True)
        found = (looked_up.pop("_merge") == "both").to_numpy()
        hit = looked_up[found]
    else:
        found = np.zeros(total, dtype=bool)
        hit = _typed(pd.DataFrame(columns=[*FILE_COLUMNS, "mtime_ns"]))
    missing_file = (keys["file_size"] < 0).to_numpy()
    to_scan = keys.loc[~missing_file & ~found, "path"].tolist()

    done = len(hit)
    if progress is not None:
        progress(done, total)

    def report(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, total)

    fresh = _scan_files(to_scan, workers or default_workers(), report) if to_scan else []
    gone = [{"path": p, "error": "does not exist (or cannot be seen) any more; it was removed after the "
             "dataset was opened"} for p in keys.loc[missing_file, "path"]]
    if gone:
        report(len(gone))
    parts = [hit]
    if fresh:
        parts.append(_typed(pd.DataFrame(fresh)).drop(columns=["mtime_ns"], errors="ignore")
                     .merge(keys[["path", "mtime_ns"]], on="path", how="left"))
    if gone:
        parts.append(_typed(pd.DataFrame(gone)).assign(mtime_ns=-1))
    scanned = _typed(pd.concat([p for p in parts if len(p)], ignore_index=True)) if any(len(p) for p in parts) \
        else _typed(pd.DataFrame(columns=[*FILE_COLUMNS, "mtime_ns"]))
    if fresh and cache_path is not None:
        _write_cache(Path(cache_path), old, scanned)
    rows = pd.DataFrame({"path": pd.array([os.fspath(p) for p in paths], dtype="str")})
    rows = rows.merge(scanned.drop(columns=["mtime_ns"]), on="path", how="left")
    return _typed(rows), len(fresh)


# ---------------------------------------------------------------- a dataset


def scan_cache_path(dataset: Dataset, workspace: str | os.PathLike | None = None) -> Path:
    """Where the scan of ``dataset`` is cached: ``<workspace>/cache/scan/<key of the dataset folder>.parquet``."""
    from engine.workspace import cache_dir

    key = hashlib.sha1(f"{Path(dataset.root).resolve()}|scan-v{SCAN_VERSION}".encode()).hexdigest()[:16]
    return cache_dir(workspace) / "scan" / f"{key}.parquet"


def _dataset_rows(dataset: Dataset) -> pd.DataFrame:
    train = dataset.manifest
    test = dataset.test_manifest
    return pd.concat([
        pd.DataFrame({"sample_id": train["sample_id"].astype("str"), "split": "train",
                      "label": train["label"].astype("str"), "path": train["path"].astype("str")}),
        pd.DataFrame({"sample_id": test["sample_id"].astype("str"), "split": "test",
                      "label": pd.Series([None] * len(test), dtype="str"), "path": test["path"].astype("str")}),
    ], ignore_index=True)


def scan_dataset(dataset: Dataset, *, workspace: str | os.PathLike | None = None, workers: int | None = None,
                 progress: Progress | None = None) -> ScanResult:
    """Scan a dataset's training and test images (cached in the workspace) and look for problems.

    ``table``: one row per image, training rows first, columns ``SCAN_COLUMNS`` (``split`` is "train" or
    "test"; ``label`` is missing for test images). ``problems``: the dataset's own (from reading the spec)
    followed by :func:`engine.data.eda.find_problems` of the table.
    """
    from engine.data.eda import find_problems

    rows = _dataset_rows(dataset)
    if rows.empty:
        raise DatasetError(f"Dataset {dataset.name!r} has no image to scan.")
    files, rescanned = scan_images(rows["path"].tolist(), cache_path=scan_cache_path(dataset, workspace),
                                   workers=workers, progress=progress)
    table = pd.concat([rows[["sample_id", "split", "label"]], files], axis=1)[SCAN_COLUMNS]
    problems = list(dataset.problems) + find_problems(table)
    unique = int(rows["path"].nunique())
    return ScanResult(table=table, problems=problems, rescanned=rescanned, cached=unique - rescanned)
