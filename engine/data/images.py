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
from PIL import Image, ImageFile

from engine.errors import DatasetError

# A truncated file must fail loudly: the scan reports it as corrupt instead of training on grey pixels.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Huge images are legitimate in competitions (whole-slide crops, satellite tiles); keep a sane ceiling.
Image.MAX_IMAGE_PIXELS = 400_000_000

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_ORIENTATION_TAG = 0x0112
# Modes Pillow resizes well in place; any other is converted to RGB before it is shrunk (Pillow cannot
# reduce "I;16", and resizes palette and bilevel images with nearest-neighbour only).
_RESIZABLE_MODES = {"RGB", "L", "RGBA", "CMYK", "YCbCr"}


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
    """Bits per channel of a Pillow image as stored in the file (1, 8, 16 or 32).

    Pillow opens 16-bit RGB(A) PNGs and TIFFs as 8-bit ``RGB``/``RGBA``; the decoder's raw mode
    (``RGB;16B``...) still tells the file's depth, so it is read from there.
    """
    if img.mode == "1":
        return 1
    if img.mode in _SIXTEEN_BIT_MODES:
        # Mode "I" is 32-bit storage but PNGs with 16-bit samples open as "I" (or "I;16").
        return 16 if img.mode != "I" or img.format in {"PNG", "TIFF"} else 32
    if img.mode == "F":
        return 32
    tile = getattr(img, "tile", None) or []
    if tile:
        args = tile[0][3] if len(tile[0]) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return 16
    return 8


_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image by 90 degrees


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened image; 1 (upright) when absent or invalid.

    Reads the header only for JPEG / TIFF / WebP; Pillow decodes a PNG to find an eXIf chunk after its pixels.
    """
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1
    return int(value) if value in _TRANSPOSE_FOR_ORIENTATION else 1


def oriented_size(img: Image.Image, orientation: int | None = None) -> tuple[int, int]:
    """(width, height) of an opened image as shown upright (EXIF orientation applied), from the header."""
    w, h = img.size
    orientation = exif_orientation(img) if orientation is None else orientation
    return (h, w) if orientation in SWAPPING_ORIENTATIONS else (w, h)


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


def decode_rgb(img: Image.Image, *, max_side: int | None = None, draft_side: int | None = None,
               orientation: int | None = None) -> np.ndarray:
    """Decode an opened image to RGB uint8 (H, W, 3), EXIF-oriented; the pixel work of :func:`load_rgb`.

    ``max_side`` shrinks the result so its longer side is at most that many pixels. For a JPEG the
    decoder's DCT scaling (``Image.draft``) does most of the shrinking for free: it decodes at the
    smallest 1/2, 1/4 or 1/8 scale whose sides stay at least ``draft_side`` (default ``max_side``).
    The orientation is applied to the small image, after shrinking. Errors are Pillow's own
    (``OSError`` for a truncated file, ``ValueError`` ...); :func:`load_rgb` names the file.
    """
    if max_side is not None and img.format == "JPEG":
        side = draft_side or max_side
        img.draft("RGB", (side, side))
    img.load()  # first: a PNG's orientation may sit after its pixels, and a truncated file must fail here
    if orientation is None:
        orientation = exif_orientation(img)
    if max_side is not None and max(img.size) > max_side:
        if img.mode not in _RESIZABLE_MODES:
            img = Image.fromarray(to_rgb_array(img))
        small = img.resize(_fit(img.size, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    else:
        small = img
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if method is not None:
        small = small.transpose(method)
    return to_rgb_array(small)


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def load_rgb(path: str | os.PathLike, *, max_side: int | None = None) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3), EXIF-oriented.

    ``max_side`` asks for a thumbnail whose longer side is at most that many pixels. For JPEGs it
    uses the decoder's DCT scaling (``Image.draft``), which skips most of the decode work — this is
    what makes thumbnails much cheaper than a full decode.
    Raises :class:`DatasetError` naming the file when it cannot be decoded (corrupt or truncated).
    """
    img = open_image(path)
    try:
        with img:
            return decode_rgb(img, max_side=max_side)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(
            f"Image file {str(path)!r} is corrupt or truncated ({type(e).__name__}: {e}); "
            "remove it or replace it with a good copy."
        ) from e
