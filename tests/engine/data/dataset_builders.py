"""Image files of every form a real dataset holds, written by the tests themselves (seeded)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def smooth_rgb(seed: int, size: tuple[int, int] = (48, 40)) -> np.ndarray:
    """A smooth random RGB uint8 image (H, W, 3) with ``size`` = (width, height): distinct per seed, photo-like."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC))


def save_rgb(path: Path, seed: int, size: tuple[int, int] = (48, 40), **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_rgb(seed, size)).save(path, **kwargs)
    return path


def png16_rgb(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one, so the chunks are written by hand)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def write_forms(folder: Path) -> dict[str, Path]:
    """One file per image form, in ``folder``; returns name -> path. Sizes are 48x40 unless said."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = smooth_rgb(1)
    files: dict[str, Path] = {}
    files["rgb_jpeg"] = save_rgb(folder / "rgb.jpg", 1, quality=92)
    files["rgb_png"] = save_rgb(folder / "rgb.png", 2)
    gray16 = (np.linspace(0, 65535, 48 * 40).reshape(40, 48)).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    files["gray16_png"] = folder / "gray16.png"
    files["rgb16_png"] = png16_rgb(folder / "rgb16.png", rgb.astype(np.uint16) * 257)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 0, np.uint8)])  # fully transparent: shows as white
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    files["rgba_png"] = folder / "rgba.png"
    pal = Image.fromarray(smooth_rgb(3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(folder / "palette.png")
    files["palette_png"] = folder / "palette.png"
    pal.save(folder / "palette_transparent.gif", transparency=0)
    files["palette_transparent_gif"] = folder / "palette_transparent.gif"
    Image.fromarray(smooth_rgb(4)).convert("L").save(folder / "gray.png")
    files["gray_png"] = folder / "gray.png"
    Image.fromarray(smooth_rgb(5)).convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    files["cmyk_jpeg"] = folder / "cmyk.jpg"
    # Stored 48 wide x 40 high, EXIF orientation 6 ("rotate 90 clockwise to view"): shows 40 x 48.
    rotated = Image.fromarray(smooth_rgb(6))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "rotated.jpg", exif=exif.tobytes(), quality=92)
    files["exif_rotated_jpeg"] = folder / "rotated.jpg"
    Image.fromarray(smooth_rgb(7)).convert("1").save(folder / "bilevel.png")
    files["bilevel_png"] = folder / "bilevel.png"
    save_rgb(folder / "webp.webp", 8, format="WEBP")
    files["webp"] = folder / "webp.webp"
    big = save_rgb(folder / "big.jpg", 9, size=(640, 480), quality=90)
    files["big_jpeg"] = big
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    files["truncated_jpeg"] = truncated
    png = (folder / "rgb.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) - 40])
    files["truncated_png"] = folder / "truncated.png"
    (folder / "garbage.jpg").write_bytes(b"this is not a JPEG at all" * 10)
    files["garbage_jpeg"] = folder / "garbage.jpg"
    return files


def class_folders(root: Path, classes=("cat", "dog"), per_class: int = 8, size: tuple[int, int] = (16, 16)) -> Path:
    """A folder-layout dataset ``root/train/<class>/<i>.png`` of small distinct images; returns ``root``."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            save_rgb(root / "train" / name / f"{i}.png", 100 * c + i, size=size)
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes: the header still reads, the pixels do not (a corrupt image)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def tiny_run_config(dataset: Path, **train) -> dict:
    """A run that trains in about a second on CPU: timm's test_resnet at 16 px, k=2, no holdout, one epoch."""
    return {"dataset": str(dataset), "model": {"name": "test_resnet"}, "image_size": 16, "device": "cpu",
            "split": {"k": 2, "seed": 0, "holdout_fraction": 0.0}, "tta_views": ["identity"],
            "train": {"epochs": 1, "batch_size": 4, "num_workers": 0, "scheduler": "none", **train}}
