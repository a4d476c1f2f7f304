"""Decoded-image cache: decode, orient and resize every image once, then read uint8 arrays from a memory map.

A K-fold study reads the same images ``k x epochs`` times per run, and many runs per competition;
decoding a JPEG costs far more than augmenting the small array that training needs. The cache
decodes each image once with :func:`load_resized` (the decoding of :func:`engine.data.load_rgb`:
EXIF orientation, 16-bit, transparency handled as everywhere else; JPEGs decoded at a reduced DCT
scale when that still leaves enough pixels), shrinks it, and stores the pixels in one memory-mapped
file that every fold, every run and every DataLoader worker reads without decoding.

Layout: aspect kept, shorter side ``stored_size``
    Each image is shrunk (never enlarged) so that its **shorter side is** ``stored_size`` pixels,
    keeping its aspect ratio; the longer side is capped at ``MAX_ASPECT * stored_size`` so a
    panorama cannot take the room of a hundred photos. A fixed square (center-crop or padding)
    would be one simpler (N, S, S, 3) array, but it throws away the edges of every non-square
    image, or fills them with padding, before ``RandomResizedCrop`` picks its region: the crops
    would no longer sample the whole photo, and the studio's preview (full image) would disagree
    with training. Keeping the aspect keeps every augmentation meaningful; the price is an index of
    shapes. :func:`stored_size_for` gives the usual margin above the training size (224 -> 256),
    so a crop at scale 1.0 still has full resolution.

On disk: ``<workspace>/cache/decoded/<key>/``
    ``key`` names what would make every row useless if it changed: the stored size, the resize
    rule (``FORMAT_VERSION``, ``MAX_ASPECT``) and the dataset's folder (the common folder of the
    paths). Inside, ``current.json`` points at one immutable ``store-<id>/`` holding
    ``pixels.u8`` (every image's ``H*W*3`` bytes back to back) and ``index.parquet`` (one row per
    image: ``path, size, mtime_ns`` -> ``offset, nbytes, height, width``). The dataset's content keys
    every row: a build stats the files, reuses each row whose path, size and ``mtime_ns`` still
    match, decodes only new or changed images, and drops rows of files that are gone. A build with
    nothing to decode writes nothing. A build that does decode writes a new store into a temporary
    folder (copying the kept rows, a memcpy, and decoding the rest in worker threads that write
    straight into the memory map), renames it, then swaps ``current.json`` atomically — a reader
    never sees half a store. An exclusive lock on the key folder serialises builds; each open cache
    holds a shared lock on its store, so a later build only deletes stores nobody reads.

Fallback
    ``max_bytes`` (the user's ``cache_max_gb``) and the free disk space bound the cache. When the
    cache would not fit, :func:`build_decoded_cache` logs why and returns ``None``; the caller then
    uses :class:`DecodingImageSource`, which decodes with the very same :func:`load_resized` on
    every read — so a cached and an uncached run see the same pixels before augmentation.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.images import SWAPPING_ORIENTATIONS, decode_rgb, exif_orientation, open_image
from engine.errors import DatasetError

try:  # POSIX advisory locks; without them (Windows) builds are not serialised and stores are kept.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_ASPECT = 4.0
PIXELS_FILE = "pixels.u8"
INDEX_FILE = "index.parquet"
CURRENT_FILE = "current.json"
_DISK_MARGIN = 1 << 30  # leave 1 GiB free on the disk
_INLINE_DECODES = 32  # fewer images than this are decoded in the calling process (no pool start-up)

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------- the resize rule


def stored_size_for(image_size: int) -> int:
    """Stored shorter side for a training size: ``image_size / 0.875`` rounded up to a multiple of 16 (224 -> 256)."""
    return int(math.ceil(image_size / 0.875 / 16) * 16)


def cached_shape(height: int, width: int, stored_size: int) -> tuple[int, int]:
    """(H, W) an image of ``height x width`` is stored at: shorter side ``stored_size``, never enlarged."""
    scale = min(1.0, stored_size / min(height, width), MAX_ASPECT * stored_size / max(height, width))
    if scale >= 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_for_cache(image: np.ndarray, stored_size: int) -> np.ndarray:
    """Shrink an (H, W, 3) uint8 image to :func:`cached_shape` with area interpolation (no aliasing)."""
    return _shrink(image, cached_shape(image.shape[0], image.shape[1], stored_size))


def load_resized(path: str | os.PathLike, stored_size: int) -> np.ndarray:
    """Decode an image as :func:`engine.data.load_rgb` does (orientation, 16-bit, transparency) and shrink
    it to :func:`cached_shape` with area interpolation: the pixels the cache stores.

    A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides at least
    ``stored_size`` (``Image.draft``), which skips most of the decoding of a large photo; the shrink
    to the final shape, computed from the full size, then happens as for any other image.
    """
    img = open_image(path)
    try:
        with img:
            width, height = img.size  # as stored, before the draft shrinks it
            if img.format == "JPEG":
                img.draft("RGB", (stored_size, stored_size))
            pixels = decode_rgb(img)
            if exif_orientation(img) in SWAPPING_ORIENTATIONS:
                width, height = height, width
    except DatasetError:
        raise
    except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError... for a bad file
        raise DatasetError(f"Image file {str(path)!r} is corrupt or truncated ({type(e).__name__}: {e}); "
                           "remove it or replace it with a good copy.") from e
    return _shrink(pixels, cached_shape(height, width, stored_size))


def _shrink(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    if shape == image.shape[:2]:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _planned_bytes(path: str, stored_size: int) -> int:
    """Bytes the stored image takes, from the file header alone.

    :func:`cached_shape` is symmetric, so the EXIF orientation (which a PNG only reveals after its
    pixels) changes the stored shape's order, never its size.
    """
    with open_image(path) as img:
        width, height = img.size
    h, w = cached_shape(height, width, stored_size)
    return h * w * 3


# ---------------------------------------------------------------- image sources (len + getitem)


class DecodingImageSource:
    """The uncached image source: decodes ``paths[i]`` with :func:`load_resized` on every read."""

    def __init__(self, paths: Sequence[str], stored_size: int):
        self.paths = [str(p) for p in paths]
        self.stored_size = int(stored_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return load_resized(self.paths[i], self.stored_size)

    def select(self, indices: Sequence[int]) -> DecodingImageSource:
        """The source of ``paths[indices]``."""
        return DecodingImageSource([self.paths[i] for i in indices], self.stored_size)

    def summary(self) -> dict[str, Any]:
        """For status.json: not cached."""
        return {"cached": False, "images": len(self), "stored_size": self.stored_size}


class DecodedImageCache:
    """Read-only view of a built cache: ``cache[i]`` is ``load_resized(paths[i], stored_size)`` as (H, W, 3) uint8.

    Picklable: a DataLoader worker gets the store path and the index and maps the file itself on its
    first read. ``decoded`` / ``reused`` count the images the build that returned it decoded and
    found already cached. An image that could not be decoded at build time is decoded again on
    read, so it raises the same :class:`DatasetError` an uncached run would.
    """

    def __init__(self, store: Path, paths: list[str], offsets: np.ndarray, shapes: np.ndarray, stored_size: int,
                 *, decoded: int = 0, reused: int = 0):
        self.store = Path(store)
        self.paths = paths
        self.stored_size = int(stored_size)
        self.decoded = decoded
        self.reused = reused
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        self.nbytes = int((self._shapes[:, 0] * self._shapes[:, 1] * 3).sum())
        self._pixels: np.memmap | None = None
        self._lock_fd: int | None = None
        self._hold_store()

    def _hold_store(self) -> None:
        """Shared lock on the store: a later build leaves it alone while this view (or its process) lives."""
        if fcntl is not None and self._lock_fd is None:
            self._lock_fd = os.open(self.store / ".readers", os.O_RDONLY | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)

    def _map(self) -> np.memmap:
        if self._pixels is None:
            self._hold_store()
            size = (self.store / PIXELS_FILE).stat().st_size
            # np.memmap refuses an empty file; a cache of failed images only never reads pixels.
            self._pixels = np.memmap(self.store / PIXELS_FILE, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        return self._pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        h, w = (int(v) for v in self._shapes[i])
        if h == 0:
            return load_resized(self.paths[i], self.stored_size)
        start = int(self._offsets[i])
        return np.array(self._map()[start:start + h * w * 3]).reshape(h, w, 3)

    def select(self, indices: Sequence[int]) -> DecodedImageCache:
        """A view of ``paths[indices]`` on the same store (a fold's images out of the run's)."""
        at = np.asarray(indices, dtype=np.int64)
        return DecodedImageCache(self.store, [self.paths[i] for i in at], self._offsets[at], self._shapes[at],
                                 self.stored_size, decoded=self.decoded, reused=self.reused)

    def unreadable_paths(self) -> list[str]:
        """Images the build could not decode: each is decoded again when read (and skipped by training)."""
        return [self.paths[i] for i in np.flatnonzero(self._shapes[:, 0] == 0)]

    def summary(self) -> dict[str, Any]:
        """For status.json: what the build that opened it did, and where the store is."""
        return {"cached": True, "images": len(self), "stored_size": self.stored_size, "decoded": self.decoded,
                "reused": self.reused, "unreadable": len(self.unreadable_paths()), "bytes": self.nbytes,
                "store": str(self.store)}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pixels"] = None
        state["_lock_fd"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __del__(self):
        if getattr(self, "_lock_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)

    def __repr__(self) -> str:
        return (f"DecodedImageCache({len(self)} images, shorter side {self.stored_size} px, "
                f"{self.nbytes / 1e6:.1f} MB, store={str(self.store)!r})")


# ---------------------------------------------------------------- where and what is stored


def cache_key(paths: Sequence[str], stored_size: int) -> str:
    """Folder name: stored size, resize rule and the dataset's folder (what invalidates every row at once)."""
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    digest = hashlib.sha1(f"{FORMAT_VERSION}|{stored_size}|{MAX_ASPECT}|{root}".encode()).hexdigest()[:12]
    return f"s{stored_size}-{digest}"


def _key_dir(paths: Sequence[str], stored_size: int, workspace) -> Path:
    from engine.workspace import cache_dir

    return cache_dir(workspace) / "decoded" / cache_key(paths, stored_size)


def _stat(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file; (-1, -1) when it cannot be stat'ed (it then fails on read, naming the file)."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _read_current(key_dir: Path):
    """(store folder, index DataFrame) of the current store, or (None, None)."""
    import json

    import pandas as pd

    try:
        name = json.loads((key_dir / CURRENT_FILE).read_text(encoding="utf-8"))["store"]
        store = key_dir / name
        return store, pd.read_parquet(store / INDEX_FILE)
    except (OSError, ValueError, KeyError):
        return None, None


def _abs_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    return [os.path.abspath(os.fspath(p)) for p in paths]


def _plan(paths: list[str], index) -> dict[str, Any]:
    """Which requested paths have a valid row in ``index`` (by path, size, mtime_ns) and which must be decoded."""
    stats = {p: _stat(p) for p in dict.fromkeys(paths)}
    rows: dict[str, int] = {}
    if index is not None:
        for row, (p, size, mtime) in enumerate(zip(index["path"], index["size"], index["mtime_ns"], strict=True)):
            if stats.get(p) == (size, mtime) and size >= 0:
                rows[p] = row
    missing = [p for p in stats if p not in rows]
    return {"stats": stats, "rows": rows, "missing": missing}


def decoded_cache_status(paths: Sequence[str | os.PathLike], stored_size: int, *, workspace=None) -> dict[str, Any]:
    """What a build would find: ``exists``, ``images`` (cached and valid), ``changed`` (to decode), ``bytes``, ``path``.

    ``bytes`` is the size of the current store on disk (every image it holds, requested or not).
    """
    paths = _abs_paths(paths)
    key_dir = _key_dir(paths, stored_size, workspace)
    store, index = _read_current(key_dir)
    plan = _plan(paths, index)
    size = (store / PIXELS_FILE).stat().st_size if store is not None and (store / PIXELS_FILE).exists() else 0
    return {"exists": store is not None, "images": len(plan["rows"]), "changed": len(plan["missing"]),
            "bytes": int(size), "path": str(key_dir)}


# ---------------------------------------------------------------- building


@contextlib.contextmanager
def _exclusive(key_dir: Path):
    key_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(key_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _plan_chunk(paths: list[str], stored_size: int) -> list[int]:
    """Worker: stored bytes of each image from its header; 0 for an unreadable file."""
    out = []
    for p in paths:
        try:
            out.append(_planned_bytes(p, stored_size))
        except (DatasetError, OSError, ValueError):
            out.append(0)
    return out


def _decode_chunk(items: list[tuple[str, int, int]], pixels_path: str, stored_size: int) -> list[tuple[int, int] | str]:
    """Worker: decode each (path, offset, nbytes) into the memory map; per item its (H, W) or why it failed."""
    mm = np.memmap(pixels_path, dtype=np.uint8, mode="r+")
    out: list[tuple[int, int] | str] = []
    for path, offset, nbytes in items:
        try:
            image = load_resized(path, stored_size)
        except DatasetError as e:
            out.append(str(e))
            continue
        if image.size != nbytes:  # the header misled the plan: keep the image uncached rather than wrong
            out.append(f"Image file {path!r} decoded to {image.shape[:2]}, not the size its header gave.")
            continue
        mm[offset:offset + nbytes] = image.reshape(-1)
        out.append(image.shape[:2])
    mm.flush()
    del mm
    return out


def _chunks(items: list, workers: int) -> list[list]:
    size = max(8, min(256, math.ceil(len(items) / (workers * 8))))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _pool(workers: int) -> ThreadPoolExecutor:
    # Threads, not processes: Pillow's decoders and OpenCV's resize release the GIL, so threads keep
    # every core busy; and a fork from a process that already runs threads (a Streamlit server, a
    # Playwright driver, torch's pools) can deadlock the child inside OpenCV — seen in the test suite.
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decoded-cache")


def _run_chunks(fn, chunks: list[list], args: tuple, workers: int, on_chunk: Callable[[int], None]) -> list:
    """``fn(chunk, *args)`` for every chunk, in a thread pool unless the work is tiny; results in order."""
    if workers <= 1 or sum(len(c) for c in chunks) < _INLINE_DECODES:
        results = []
        for c in chunks:
            results.append(fn(c, *args))
            on_chunk(len(c))
        return results
    with _pool(min(workers, len(chunks))) as pool:
        futures = [pool.submit(fn, c, *args) for c in chunks]
        results = []
        for c, f in zip(chunks, futures, strict=True):
            results.append(f.result())
            on_chunk(len(c))
    return results


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _refuse(reason: str) -> None:
    log.warning("Decoded-image cache not built: %s Decoding every image at each read instead.", reason)


def build_decoded_cache(paths: Sequence[str | os.PathLike], stored_size: int, *, workspace=None,
                        max_bytes: int | None = None, workers: int | None = None,
                        progress: Progress | None = None) -> DecodedImageCache | None:
    """Build (or reuse, or update) the cache of ``paths`` at shorter side ``stored_size``; ``None`` if it does not fit.

    Only new or changed images (by path, size, mtime_ns) are decoded, in ``workers`` threads
    (default: every core). ``progress(done, total)`` counts decoded images (``(0, 0)`` when nothing
    had to be decoded). ``max_bytes`` bounds the store (pixels of every image it keeps); with no
    bound, the free disk space less 1 GiB does. When the cache would not fit, a warning says why
    and the function returns ``None``: use :class:`DecodingImageSource` instead, which yields the
    same pixels. The returned view's ``decoded`` / ``reused`` say what this build did.
    """
    paths = _abs_paths(paths)
    stored_size = int(stored_size)
    if stored_size < 1:
        raise DatasetError(f"The 'stored_size' of the decoded-image cache must be a positive int. Got {stored_size}.")
    if not paths:
        raise DatasetError("The decoded-image cache needs at least one image path; got none.")
    workers = max(1, workers or _cpu_count())
    key_dir = _key_dir(paths, stored_size, workspace)
    with _exclusive(key_dir):
        store, index = _read_current(key_dir)
        plan = _plan(paths, index)
        if not plan["missing"]:
            if progress:
                progress(0, 0)
            return _view(store, index, plan["rows"], paths, stored_size, decoded=0, reused=len(plan["rows"]))
        return _build_store(key_dir, store, index, plan, paths, stored_size, max_bytes, workers, progress)


def _view(store: Path, index, rows: dict[str, int], paths: list[str], stored_size: int, *, decoded: int, reused: int):
    at = np.array([rows[p] for p in paths], dtype=np.int64)
    offsets = index["offset"].to_numpy()[at]
    shapes = np.stack([index["height"].to_numpy()[at], index["width"].to_numpy()[at]], axis=1)
    return DecodedImageCache(store, paths, offsets, shapes, stored_size, decoded=decoded, reused=reused)


def _nbytes(index) -> np.ndarray:
    """Bytes each row takes in the pixels file (a failed image keeps its planned room, unused)."""
    return index["nbytes"].to_numpy(np.int64)


def _new_rows(plan: dict[str, Any], stored_size: int, workers: int):
    """Index rows of the images to decode: their bytes planned from the headers; offset and shape set later."""
    import pandas as pd

    missing = plan["missing"]
    nbytes = [n for chunk in _run_chunks(_plan_chunk, _chunks(missing, workers), (stored_size,), workers,
                                         lambda n: None) for n in chunk]
    stats = [plan["stats"][p] for p in missing]
    return pd.DataFrame({"path": missing, "size": [s for s, _ in stats], "mtime_ns": [m for _, m in stats],
                         "nbytes": nbytes, "height": 0, "width": 0})


def _kept_rows(old_index, plan: dict[str, Any], room: int):
    """Rows of the current store to carry over: every valid requested one, then still-valid others while they fit.

    Others are images of the same folder that this build does not ask for (the test images when it
    builds the training ones, say): keeping them spares the next build of that subset a full decode.
    """
    if old_index is None:
        return None
    requested = list(plan["rows"].values())
    nbytes = _nbytes(old_index)
    others = []
    room -= int(nbytes[requested].sum())
    for r, (p, size, mtime) in enumerate(zip(old_index["path"], old_index["size"], old_index["mtime_ns"], strict=True)):
        if p not in plan["stats"] and nbytes[r] <= room and _stat(p) == (size, mtime):
            others.append(r)
            room -= int(nbytes[r])
    return old_index.iloc[requested + others].rename(columns={"offset": "old_offset"})


def _budget(key_dir: Path, max_bytes: int | None) -> tuple[int, str]:
    """Bytes the store may take, and how to name that bound in a message."""
    free = shutil.disk_usage(key_dir).free - _DISK_MARGIN
    if max_bytes is not None and max_bytes <= free:
        return max_bytes, f"the limit of {max_bytes / 1e9:.2f} GB (cache_max_gb)"
    return max(free, 0), f"the {max(free, 0) / 1e9:.2f} GB free on {key_dir.parent} (less a 1 GiB margin)"


def _build_store(key_dir: Path, old_store: Path | None, old_index, plan: dict[str, Any], paths: list[str],
                 stored_size: int, max_bytes: int | None, workers: int, progress: Progress | None):
    import pandas as pd

    from engine.io import atomic_write_json

    new = _new_rows(plan, stored_size, workers)
    budget, bound = _budget(key_dir, max_bytes)
    needed = int(_nbytes(new).sum()) + (int(_nbytes(old_index)[list(plan["rows"].values())].sum()) if plan["rows"] else 0)
    if needed > budget:
        _refuse(f"{len(plan['stats'])} images at shorter side {stored_size} px need {needed / 1e9:.2f} GB, "
                f"more than {bound}. Raise the limit, free disk space or lower the stored size.")
        return None
    kept = _kept_rows(old_index, plan, budget)
    index = pd.concat([kept, new], ignore_index=True) if kept is not None else new
    index["offset"] = np.concatenate([[0], np.cumsum(_nbytes(index))[:-1]]).astype(np.int64)
    store, failed = _write_store(key_dir, old_store, index, 0 if kept is None else len(kept), stored_size, workers,
                                 progress)
    atomic_write_json(key_dir / CURRENT_FILE, {"store": store.name, "format_version": FORMAT_VERSION,
                                               "stored_size": stored_size, "images": len(index),
                                               "bytes": int(_nbytes(index).sum())})
    _collect_garbage(key_dir, keep=store)
    log.info("Decoded-image cache %s: %d image(s) decoded (%d failed), %d reused.", store, len(new), failed,
             len(plan["rows"]))
    rows = {p: r for r, p in enumerate(index["path"])}
    return _view(store, index, rows, paths, stored_size, decoded=len(new), reused=len(plan["rows"]))


def _write_store(key_dir: Path, old_store: Path | None, index, n_kept: int, stored_size: int, workers: int,
                 progress: Progress | None) -> tuple[Path, int]:
    """Write pixels and index into a temporary folder, rename it to ``store-<id>``; (store, images that failed).

    The first ``n_kept`` rows are copied from ``old_store`` (column ``old_offset``); the others are
    decoded and get their shape. An image that fails keeps shape 0 x 0 in the index: reading it
    decodes it again, which raises the error naming the file, as an uncached run would.
    """
    store_id = uuid.uuid4().hex[:12]
    tmp = key_dir / f".tmp-store-{store_id}"
    tmp.mkdir()
    try:
        pixels = tmp / PIXELS_FILE
        with open(pixels, "wb") as f:  # sparse until written
            f.truncate(int(_nbytes(index).sum()))
        if n_kept:
            _copy_rows(old_store / PIXELS_FILE, pixels, index.iloc[:n_kept])
        new = index.iloc[n_kept:]
        rows = [(r, (p, int(o), int(n))) for r, p, o, n in zip(new.index, new["path"], new["offset"], new["nbytes"],
                                                               strict=True) if n > 0]
        results = _decode_into(pixels, [item for _, item in rows], stored_size, workers, progress)
        errors = [e for e in results if isinstance(e, str)]
        done = [(r, shape) for (r, _), shape in zip(rows, results, strict=True) if not isinstance(shape, str)]
        if done:
            at = [r for r, _ in done]
            index.loc[at, "height"] = [h for _, (h, _) in done]
            index.loc[at, "width"] = [w for _, (_, w) in done]
        decoded = index.iloc[n_kept:]
        failed = decoded.loc[decoded["height"] == 0, "path"].tolist()  # header unreadable, or the decode failed
        if failed:
            log.warning("Decoded-image cache: %d image(s) could not be decoded; training skips them when it reads "
                        "them: %s%s. First error: %s", len(failed), ", ".join(failed[:20]),
                        f" and {len(failed) - 20} more" if len(failed) > 20 else "",
                        errors[0] if errors else "the file's header cannot be read")
        index.drop(columns=["old_offset"], errors="ignore").to_parquet(tmp / INDEX_FILE, index=False)
        store = key_dir / f"store-{store_id}"
        os.replace(tmp, store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return store, len(failed)


def _decode_into(pixels: Path, todo: list[tuple[str, int, int]], stored_size: int, workers: int,
                 progress: Progress | None) -> list[tuple[int, int] | str]:
    """Decode every (path, offset, nbytes) into the pixels file in worker threads; per item (H, W) or the error."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, len(todo))

    if progress:
        progress(0, len(todo))
    chunks = _run_chunks(_decode_chunk, _chunks(todo, workers), (str(pixels), stored_size), workers, advance)
    return [e for chunk in chunks for e in chunk]


def _copy_rows(src: Path, dst: Path, kept) -> None:
    """Copy kept rows' bytes from the old store (``old_offset``) to the new one (``offset``): no decoding."""
    old = np.memmap(src, dtype=np.uint8, mode="r")
    new = np.memmap(dst, dtype=np.uint8, mode="r+")
    for src_at, dst_at, n in zip(kept["old_offset"].to_numpy(np.int64), kept["offset"], _nbytes(kept), strict=True):
        if n:
            new[dst_at:dst_at + n] = old[src_at:src_at + n]
    new.flush()
    del old, new


def _collect_garbage(key_dir: Path, *, keep: Path) -> None:
    """Delete stores other than ``keep`` that no open cache holds, and leftovers of interrupted builds."""
    for child in key_dir.iterdir():
        if child == keep or not child.is_dir():
            continue
        if child.name.startswith(".tmp-store-"):  # we hold the build lock: nobody is writing it
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith("store-") and _unused(child):
            shutil.rmtree(child, ignore_errors=True)


def _unused(store: Path) -> bool:
    if fcntl is None:  # pragma: no cover - cannot tell, keep it
        return False
    fd = os.open(store / ".readers", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def open_image_source(paths: Sequence[str | os.PathLike], stored_size: int, *, cache: bool = True, workspace=None,
                      max_bytes: int | None = None, workers: int | None = None, progress: Progress | None = None):
    """The image source training reads: the decoded-image cache when enabled and it fits, else decoding.

    Both yield ``load_resized(paths[i], stored_size)``, so turning the cache on or off never changes
    what the model sees.
    """
    if cache:
        built = build_decoded_cache(paths, stored_size, workspace=workspace, max_bytes=max_bytes, workers=workers,
                                    progress=progress)
        if built is not None:
            return built
    return DecodingImageSource(_abs_paths(paths), stored_size)
