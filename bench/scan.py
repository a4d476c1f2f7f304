"""Image-scan throughput: the engine's scan against the obvious loop, and the cached second scan.

    python bench/scan.py [--images 3000] [--cached-images 10000] [--workers N] [--out DIR] [--keep]

Writes ``--images`` realistic 640x480 JPEGs (random smooth colour fields plus sensor-like noise, so they
compress like photos: about 60-100 KB each) into a folder-layout dataset, then times:

1. the baseline: one loop that fully decodes each image with Pillow and gets the same facts (size, mode,
   bit depth, format, file size, EXIF orientation, SHA-1 of the bytes, ImageHash phash, per-channel
   mean / std, brightness);
2. the engine's cold scan (``engine.data.scan.scan_images``, empty cache) with ``--workers`` processes
   (default: every core), and with 1 process to show the per-core gain;
3. the engine's cached second scan of the unchanged files;
4. at ``--cached-images`` files (the images copied under more names), the cached scan again, plus the
   whole ``scan_dataset`` call (cache join + problem search) the studio makes.

Prints images/second and the ratios; the figures go into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = 5
WIDTH, HEIGHT = 640, 480


# ---------------------------------------------------------------- the images


def _photo_like(seed: int) -> Image.Image:
    """A 640x480 RGB image that compresses like a photo: smooth colour structure plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(rng.integers(3, 7), rng.integers(4, 9), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.int16)
    detail = np.asarray(Image.fromarray(rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8))
                        .resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR), dtype=np.int16)
    noise = rng.integers(-6, 7, size=(HEIGHT, WIDTH, 3), dtype=np.int16)
    pixels = smooth * 3 // 4 + detail // 4 + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_image(args: tuple[str, int]) -> None:
    path, seed = args
    _photo_like(seed).save(path, format="JPEG", quality=90)


def make_images(folder: Path, n: int) -> list[str]:
    """``n`` JPEGs in ``folder/train/class_k/`` (a folder-layout dataset); returns their paths."""
    jobs = []
    for i in range(n):
        d = folder / "train" / f"class_{i % CLASSES}"
        d.mkdir(parents=True, exist_ok=True)
        jobs.append((str(d / f"img_{i:05d}.jpg"), i))
    todo = [job for job in jobs if not Path(job[0]).is_file()]  # --out DIR --keep: generated once
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_image, todo, chunksize=32))
    return [p for p, _ in jobs]


def add_copies(folder: Path, paths: list[str], total: int) -> list[str]:
    """Copies of ``paths`` under new names until there are ``total`` files (for the cached-scan size)."""
    out = list(paths)
    k = 0
    while len(out) < total:
        src = paths[k % len(paths)]
        dst = Path(src).with_name(f"copy{k // len(paths)}_{Path(src).name}")
        if not dst.is_file():
            shutil.copyfile(src, dst)
        out.append(str(dst))
        k += 1
    return out


# ---------------------------------------------------------------- the baseline


def baseline_facts(path: str) -> dict:
    """The obvious way: decode the whole image with Pillow, then measure it."""
    import cv2
    import imagehash

    from engine.data.images import bit_depth

    with open(path, "rb") as f:
        data = f.read()
    img = Image.open(io.BytesIO(data))
    fmt, mode, depth = img.format, img.mode, bit_depth(img)
    orientation = img.getexif().get(0x0112, 1)
    img = ImageOps.exif_transpose(img)  # full decode
    rgb = np.asarray(img.convert("RGB"))
    # The same fast statistics call as the engine (numpy's mean / std would make this loop 10x slower
    # and the comparison unfair): the difference measured is the full decode and the single process.
    mean, std = (v.ravel() for v in cv2.meanStdDev(rgb))
    return {
        "path": path, "width": img.width, "height": img.height, "mode": mode, "bit_depth": depth, "format": fmt,
        "file_size": len(data), "exif_orientation": orientation, "sha1": hashlib.sha1(data).hexdigest(),
        "phash": str(imagehash.phash(img)), "mean": mean, "std": std,
        "brightness": float(0.299 * mean[0] + 0.587 * mean[1] + 0.114 * mean[2]),
    }


# ---------------------------------------------------------------- timing


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the scan's worker processes)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed_cpu(fn):
    """(result, wall seconds, CPU seconds): CPU time tells the work done even when other jobs share the cores."""
    cpu = cpu_seconds()
    out, wall = timed(fn)
    return out, wall, cpu_seconds() - cpu


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cores} cores usable ({cpu}), Python {platform.python_version()}, load average {load:.1f} at start"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000, help="JPEGs to generate and scan (default 3000)")
    parser.add_argument("--cached-images", type=int, default=10000, help="files for the large cached scan")
    parser.add_argument("--baseline-images", type=int, default=None,
                        help="time the baseline on this many of the images (default: all)")
    parser.add_argument("--workers", type=int, default=None, help="scan processes (default: every core)")
    parser.add_argument("--out", default=None, help="folder for the images (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated images")
    args = parser.parse_args(argv)

    from engine.data import open_dataset
    from engine.data.scan import default_workers, scan_dataset, scan_images

    workers = args.workers or default_workers()
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="scan-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    for stale in [*folder.glob("cache*.parquet"), folder / "workspace"]:  # a kept folder: cold means cold
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    try:
        paths, gen_s = timed(lambda: make_images(folder, args.images))
        size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
        print(f"Generated {len(paths):,} {WIDTH}x{HEIGHT} JPEGs ({size_mb / len(paths) * 1000:.0f} KB each) "
              f"in {gen_s:.1f} s")
        for p in paths[:64]:  # warm the page cache the same way for every contender
            Path(p).read_bytes()
        base_paths = paths[: args.baseline_images] if args.baseline_images else paths
        baseline_facts(base_paths[0])  # imports (imagehash, scipy, cv2) outside the timing
        _, base_s, base_cpu = timed_cpu(lambda: [baseline_facts(p) for p in base_paths])
        base_rate, base_cpu_rate = len(base_paths) / base_s, len(base_paths) / base_cpu
        print(f"Baseline (full Pillow decode, 1 process): {len(base_paths):,} images in {base_s:.2f} s = "
              f"{base_rate:,.0f} images/s; {base_cpu:.2f} CPU-s = {base_cpu_rate:,.0f} images per CPU-second")

        cache = folder / "cache-1.parquet"
        (_, n1), one_s, one_cpu = timed_cpu(lambda: scan_images(paths, cache_path=cache, workers=1))
        print(f"Engine cold scan, 1 process: {n1:,} images in {one_s:.2f} s = {n1 / one_s:,.0f} images/s "
              f"({n1 / one_s / base_rate:.1f}x the baseline); {one_cpu:.2f} CPU-s = {n1 / one_cpu:,.0f} images "
              f"per CPU-second ({n1 / one_cpu / base_cpu_rate:.1f}x)")
        cache = folder / "cache.parquet"
        (_, n), cold_s, cold_cpu = timed_cpu(lambda: scan_images(paths, cache_path=cache, workers=workers))
        cold_rate = n / cold_s
        print(f"Engine cold scan, {workers} processes: {n:,} images in {cold_s:.2f} s = {cold_rate:,.0f} images/s "
              f"({cold_rate / base_rate:.1f}x the baseline); {cold_cpu:.2f} CPU-s = {n / cold_cpu:,.0f} images per "
              f"CPU-second ({n / cold_cpu / base_cpu_rate:.1f}x)")
        (_, again), warm_s, warm_cpu = timed_cpu(lambda: scan_images(paths, cache_path=cache, workers=workers))
        assert again == 0, f"the cached scan re-read {again} files"
        print(f"Engine cached scan: {len(paths):,} images in {warm_s:.3f} s ({warm_cpu:.3f} CPU-s, {again} re-read)")

        if args.cached_images > len(paths):
            many = add_copies(folder, paths, args.cached_images)
            big_cache = folder / "cache-big.parquet"
            (_, n_big), big_cold_s = timed(lambda: scan_images(many, cache_path=big_cache, workers=workers))
            print(f"Engine cold scan at {len(many):,} files: {big_cold_s:.1f} s = {n_big / big_cold_s:,.0f} images/s")
            (_, again), big_warm_s, big_warm_cpu = timed_cpu(
                lambda: scan_images(many, cache_path=big_cache, workers=workers))
            assert again == 0
            print(f"Engine cached scan at {len(many):,} files: {big_warm_s:.3f} s ({big_warm_cpu:.3f} CPU-s)")
            dataset = open_dataset(folder)  # folder layout: train/class_k/
            workspace = folder / "workspace"
            scan_dataset(dataset, workspace=workspace, workers=workers)
            result, ds_warm_s, ds_warm_cpu = timed_cpu(
                lambda: scan_dataset(dataset, workspace=workspace, workers=workers))
            kinds = {}
            for p in result.problems:
                kinds[p.kind] = kinds.get(p.kind, 0) + 1
            print(f"scan_dataset cached at {len(result.table):,} images (join + problem search): {ds_warm_s:.3f} s "
                  f"({ds_warm_cpu:.3f} CPU-s); "
                  f"problems {kinds}")
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
