"""Decode any image a real dataset holds into one form: an RGB ``uint8`` array of shape (H, W, 3).

Every reader in the project (scan, training, decoded-image cache, studio thumbnails, Grad-CAM) goes
through :func:`load_rgb`, so an image looks the same everywhere. The conversions are deliberate:

- EXIF orientation is applied (a phone photo shows upright, as in any viewer).
- 16-bit images (``I;16*``, ``I``) are mapped linearly from 0..65535 to 0..255 (divide by 257),
  not truncated; float images (``F``) are min-max scaled.
- Transparency (RGBA, LA, palette with a transparent index) is composited on white, the way an
  image viewer shows it, instead of exposing whatever colour hides under transparent pixels.
- Grayscale and bilevel images are replicated to three channels; CMYK, YCbCr, LAB, HSV are converted
  by Pillow's colour conversion.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from engine.errors import DatasetError

# A truncated file must fail loudly: the scan reports it as corrupt instead of training on grey pixels.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Huge images are legitimate in competitions (whole-slide crops, satellite tiles); keep a sane ceiling.
Image.MAX_IMAGE_PIXELS = 400_000_000

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension the project reads."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image lazily (header only), raising :class:`DatasetError` that names the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except FileNotFoundError as e:
        raise DatasetError(f"Image file {str(path)!r} does not exist.") from e
    except Exception as e:  # Pillow raises many types for unreadable files
        raise DatasetError(f"Image file {str(path)!r} cannot be read as an image ({type(e).__name__}: {e}).") from e


def bit_depth(img: Image.Image) -> int:
    """Bits per channel of a Pillow image (1, 8, 16 or 32)."""
    if img.mode == "1":
        return 1
    if img.mode in _SIXTEEN_BIT_MODES:
        # Mode "I" is 32-bit storage but PNGs with 16-bit samples open as "I" (or "I;16").
        return 16 if img.mode != "I" or img.format in {"PNG", "TIFF"} else 32
    if img.mode == "F":
        return 32
    return 8


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a decoded (already oriented) Pillow image to an RGB uint8 array (H, W, 3)."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img, dtype=np.float64 if mode == "I" else np.uint16)
        if mode == "I" and arr.size and arr.max() > 65535:
            arr = arr * (65535.0 / arr.max())
        gray = np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
        gray = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return np.repeat(np.rint(gray).astype(np.uint8)[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def load_rgb(path: str | os.PathLike, *, max_side: int | None = None) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3), EXIF-oriented.

    ``max_side`` asks for a thumbnail whose longer side is at most that many pixels. For JPEGs it
    uses the decoder's DCT scaling (``Image.draft``), which skips most of the decode work — this is
    what makes the scan much faster than a full decode.
    Raises :class:`DatasetError` naming the file when it cannot be decoded (corrupt or truncated).
    """
    img = open_image(path)
    try:
        with img:
            if max_side is not None and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            img = ImageOps.exif_transpose(img)
            if max_side is not None and max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            else:
                img.load()
            return to_rgb_array(img)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(
            f"Image file {str(path)!r} is corrupt or truncated ({type(e).__name__}: {e}); "
            "remove it or replace it with a good copy."
        ) from e
