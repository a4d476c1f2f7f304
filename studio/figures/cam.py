"""Pictures and captions of the Grad-CAM page (pure: arrays and labels in, an image or text out)."""

from __future__ import annotations

import cv2
import numpy as np

from engine.explain import overlay

TILE_SIDE = 176  # display size of a tile's longer side, in pixels


def enlarge(image: np.ndarray, side: int = TILE_SIDE) -> np.ndarray:
    """The image scaled so its longer side is ``side`` (small images smoothly enlarged, big ones shrunk)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


def cam_tile(image: np.ndarray, cam: np.ndarray, *, side: int = TILE_SIDE, alpha: float = 0.5) -> np.ndarray:
    """``cam`` (h, w in [0, 1]) as a heat map over ``image`` (uint8 RGB), at display size. uint8 (H, W, 3)."""
    return overlay(enlarge(image, side), cam, alpha=alpha)


def colorbar(width: int = 240, height: int = 12) -> np.ndarray:
    """The heat-map scale, low (left, blue) to high (right, red): uint8 (height, width, 3)."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return overlay(np.zeros((height, width, 3), np.uint8), ramp, alpha=1.0)


def prediction_caption(classes: list[str], predicted: int, confidence: float, *, true: int | None = None,
                       target: int | None = None, empty: bool = False) -> str:
    """Markdown under a tile: the predicted class and its probability, right / wrong against the true class
    when known, the class the map explains when it is not the predicted one, and a note when the map is
    empty (nothing at this layer speaks for the class)."""
    name = classes[predicted] if 0 <= predicted < len(classes) else str(predicted)
    text = f"predicted **{name}** · {confidence:.0%}"
    if true is not None:
        text = f":green[✓ {text}]" if predicted == true else f":red[✗ {text}]"
    if target is not None and target != predicted:
        target_name = classes[target] if 0 <= target < len(classes) else str(target)
        text += f"  \nmap for class **{target_name}**"
    if empty:
        text += "  \n:gray[empty map: nothing at this layer speaks for this class]"
    return text
