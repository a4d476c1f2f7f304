"""Test-time-augmentation views: one definition used for the studio preview and for prediction.

Each view is an invertible geometric op on the last two axes (H, W), so it applies the same way to a
torch batch (N, C, H, W) on the device and to a numpy image (H, W, C) for the preview.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import ConfigError

TTA_VIEWS: dict[str, str] = {
    "identity": "the image as is",
    "hflip": "mirrored left-right",
    "vflip": "mirrored top-bottom",
    "transpose": "rows and columns swapped (mirror on the main diagonal)",
    "rot90": "rotated 90 degrees counter-clockwise",
    "rot180": "rotated 180 degrees",
    "rot270": "rotated 270 degrees counter-clockwise",
}
DEFAULT_TTA_VIEWS = ("identity", "hflip")


def list_tta_views() -> list[str]:
    return list(TTA_VIEWS)


def validate_tta_views(views: Sequence[str], *, field: str = "tta_views") -> list[str]:
    """Check view names; the list must be non-empty and free of repeats. Returns it as a list."""
    views = list(views)
    if not views:
        raise ConfigError(f"The {field!r} parameter must name at least one view among {list(TTA_VIEWS)}; got [].")
    bad = [v for v in views if v not in TTA_VIEWS]
    if bad:
        raise ConfigError(f"The {field!r} parameter must be views among {list(TTA_VIEWS)}. Got {bad} instead.")
    if len(set(views)) != len(views):
        raise ConfigError(f"The {field!r} parameter names a view twice: {views}.")
    return views


def apply_view_torch(batch, view: str):
    """Apply a view to a torch tensor whose last two dims are (H, W). Square inputs keep their shape."""
    import torch

    if view == "identity":
        return batch
    if view == "hflip":
        return torch.flip(batch, dims=(-1,))
    if view == "vflip":
        return torch.flip(batch, dims=(-2,))
    if view == "transpose":
        return batch.transpose(-1, -2)
    if view in ("rot90", "rot180", "rot270"):
        return torch.rot90(batch, k={"rot90": 1, "rot180": 2, "rot270": 3}[view], dims=(-2, -1))
    raise ConfigError(f"Unknown TTA view {view!r}; choose among {list(TTA_VIEWS)}.")


def apply_view_numpy(image: np.ndarray, view: str) -> np.ndarray:
    """Apply a view to an (H, W) or (H, W, C) numpy image — the same op as :func:`apply_view_torch`."""
    if view == "identity":
        return image
    if view == "hflip":
        return image[:, ::-1]
    if view == "vflip":
        return image[::-1]
    if view == "transpose":
        return np.swapaxes(image, 0, 1)
    if view in ("rot90", "rot180", "rot270"):
        return np.rot90(image, k={"rot90": 1, "rot180": 2, "rot270": 3}[view], axes=(0, 1))
    raise ConfigError(f"Unknown TTA view {view!r}; choose among {list(TTA_VIEWS)}.")
