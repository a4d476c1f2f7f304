"""Preview a pipeline: N images x M random draws, with the parameters each draw applied; TTA views.

Draws are reproducible: image ``i`` is augmented by the pipeline seeded with ``image_seed(seed, i)``
(albumentations' own ``Compose.set_random_seed``), so the same seed gives the same pixels, another
seed other pixels, and adding an image to the preview does not change the draws of the others.
The applied parameters come from albumentations itself (``Compose(save_applied_params=True)`` and
``result["applied_transforms"]``): only the transforms that fired are listed, nested ones included.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.augment.steps import Pipeline
from engine.augment.tta import apply_view_numpy, validate_tta_views
from engine.errors import ConfigError

# Applied parameters that say nothing to a person looking at the picture.
_HIDDEN_PARAMS = frozenset(
    {
        "shape",
        "interpolation",
        "mask_interpolation",
        "fill",
        "fill_mask",
        "matrix",
        "bbox_matrix",
        "output_shape",
        "seed",
        "order",
        "kernel",
        "pad_params",
        "image_shape",
    }
)


@dataclass(frozen=True)
class Draw:
    """One augmented image. ``image``: uint8 (H, W, 3) ready to show; ``applied``: (transform, params) in
    order; ``rescaled``: the pipeline produced floats (e.g. after Normalize), stretched to 0..255 for display."""

    image: np.ndarray
    applied: tuple[tuple[str, dict[str, Any]], ...]
    rescaled: bool = False

    def caption(self, max_chars: int = 120) -> str:
        return describe_applied(self.applied, max_chars=max_chars)


@dataclass(frozen=True)
class PreviewRow:
    """An original image (uint8 (H, W, 3)) and its draws."""

    original: np.ndarray
    draws: tuple[Draw, ...]


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` in a preview seeded with ``seed`` (independent streams per image)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def preview_pipeline(
    spec: dict[str, Any] | Pipeline, images: Sequence[np.ndarray], *, draws: int, seed: int
) -> list[PreviewRow]:
    """Apply the pipeline ``draws`` times to each image. ``images``: uint8 (H, W, 3) arrays.

    Returns one :class:`PreviewRow` per image. :class:`ConfigError` names the transform that failed.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ConfigError(f"The 'draws' parameter must be an int >= 1. Got {draws!r} instead.")
    pipeline = spec if isinstance(spec, Pipeline) else Pipeline.from_spec(spec)
    compose = pipeline.build(save_applied_params=True)
    rows = []
    for i, image in enumerate(images):
        compose.set_random_seed(image_seed(seed, i))
        row = tuple(_draw(compose, image, i) for _ in range(draws))
        rows.append(PreviewRow(to_display(image)[0], row))
    return rows


def _draw(compose, image: np.ndarray, index: int) -> Draw:
    try:
        result = compose(image=image)
    except Exception as e:  # a transform that cannot handle this image (crop larger than it, ...)
        name = _failing_transform(sys.exc_info()[2])
        where = f"{name} failed" if name else "The pipeline failed"
        raise ConfigError(
            f"{where} on preview image {index + 1} ({image.shape[1]}x{image.shape[0]}): {type(e).__name__}: {e}"
        ) from None
    shown, rescaled = to_display(result["image"])
    applied = tuple((name, summarize_params(params)) for name, params in result.get("applied_transforms", []))
    return Draw(shown, applied, rescaled)


def _failing_transform(tb) -> str | None:
    """Class name of the innermost albumentations transform on the traceback (not a Compose / OneOf)."""
    from albumentations.core.composition import BaseCompose
    from albumentations.core.transforms_interface import BasicTransform

    name = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, BasicTransform) and not isinstance(owner, BaseCompose):
            name = type(owner).__name__
        tb = tb.tb_next
    return name


def to_display(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """A uint8 (H, W, 3) copy for display and whether the values were rescaled (float output)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] > 3:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr), False
    arr = arr.astype(np.float32)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    return np.ascontiguousarray(np.clip(scaled, 0, 255).astype(np.uint8)), True


def summarize_params(params: dict[str, Any]) -> dict[str, Any]:
    """The applied parameters a person can read: plain numbers rounded, big arrays as their shape."""
    return {k: _readable(v) for k, v in params.items() if k not in _HIDDEN_PARAMS}


def _readable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.size <= 8 or (value.ndim == 2 and value.shape[0] <= 8 and value.shape[1] <= 4):
            return _readable(value.tolist())
        return f"array of shape {tuple(value.shape)}"
    if isinstance(value, np.generic):
        return _readable(value.item())
    if isinstance(value, float):
        return float(f"{value:.3g}")
    if isinstance(value, dict):
        return {str(k): _readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_readable(v) for v in value]
    return value


def describe_applied(applied: Sequence[tuple[str, dict[str, Any]]], *, max_chars: int = 120) -> str:
    """One line: 'Affine rotate=12.3 scale={x: 1.05, y: 0.97} · HorizontalFlip'; 'no transform fired' if none."""
    if not applied:
        return "no transform fired"
    text = " · ".join(f"{name} {describe_params(params)}".strip() for name, params in applied)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def describe_params(params: dict[str, Any]) -> str:
    """'rotate=12.3 scale={x: 1.05, y: 0.97}' for summarized parameters."""
    return " ".join(f"{k}={_compact(v)}" for k, v in params.items())


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "(" + ", ".join(_compact(v) for v in value) + ")"
    return str(value)


def tta_preview(images: Sequence[np.ndarray], views: Sequence[str], *, image_size: int) -> list[list[np.ndarray]]:
    """Each test-time view of each image, as prediction sees it: resized to ``image_size`` square, then the
    view (``engine.augment.tta.apply_view_numpy``, the op prediction applies on the device).

    Returns ``[image][view]`` uint8 (image_size, image_size, 3) arrays.
    """
    import cv2

    views = validate_tta_views(views, field="views")
    out = []
    for image in images:
        shown, _ = to_display(image)
        resized = cv2.resize(shown, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
        out.append([np.ascontiguousarray(apply_view_numpy(resized, view)) for view in views])
    return out
