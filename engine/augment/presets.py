"""Ready-made augmentation pipelines for image classification: ``none``, ``light``, ``medium``, ``heavy``.

Each preset is albumentations' serialized dict (``A.to_dict(A.Compose([...]))``) of a pipeline that
ends at ``image_size x image_size`` on uint8 RGB images. No ``Normalize`` and no ``ToTensorV2``: the
engine normalizes on the device with the model's mean / std (docs/formats.md, "Augmentation pipeline").
"""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError

PRESET_NAMES = ("none", "light", "medium", "heavy")


def preset(name: str, image_size: int) -> dict[str, Any]:
    """The serialized pipeline of preset ``name`` producing ``image_size`` square images."""
    if name not in PRESET_NAMES:
        raise ConfigError(
            "The augmentation preset must be a str among {"
            + ", ".join(map(repr, PRESET_NAMES))
            + f"}}. Got {name!r} instead."
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ConfigError(
            f"The 'image_size' of an augmentation preset must be an int >= 8. Got {image_size!r} instead."
        )
    from engine.augment.pipeline import _albumentations

    A = _albumentations()
    return A.to_dict(A.Compose(_transforms(A, name, image_size)))


def _transforms(A, name: str, s: int) -> list:
    if name == "none":
        return [A.Resize(height=s, width=s)]
    if name == "light":
        return [A.RandomResizedCrop(size=(s, s), scale=(0.8, 1.0)), A.HorizontalFlip(p=0.5)]
    if name == "medium":
        return [
            A.RandomResizedCrop(size=(s, s), scale=(0.6, 1.0)),
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.0625, 0.0625), rotate=(-15, 15), p=0.5),
            A.RandomBrightnessContrast(brightness_limit=(-0.2, 0.2), contrast_limit=(-0.2, 0.2), p=0.5),
            A.HueSaturationValue(
                hue_shift_limit=(-10, 10), sat_shift_limit=(-20, 20), val_shift_limit=(-10, 10), p=0.3
            ),
            A.CoarseDropout(
                num_holes_range=(1, 4), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15), p=0.3
            ),
        ]
    return [  # heavy
        A.RandomResizedCrop(size=(s, s), scale=(0.4, 1.0)),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.2),
        A.Affine(scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), rotate=(-30, 30), shear=(-10, 10), p=0.7),
        A.OneOf(
            [
                A.RandomBrightnessContrast(brightness_limit=(-0.3, 0.3), contrast_limit=(-0.3, 0.3)),
                A.ColorJitter(brightness=(0.7, 1.3), contrast=(0.7, 1.3), saturation=(0.7, 1.3), hue=(-0.05, 0.05)),
                A.HueSaturationValue(hue_shift_limit=(-20, 20), sat_shift_limit=(-30, 30), val_shift_limit=(-20, 20)),
            ],
            p=0.8,
        ),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 5)),
                A.MotionBlur(blur_limit=(3, 7)),
                A.GaussNoise(std_range=(0.02, 0.1)),
            ],
            p=0.4,
        ),
        A.ToGray(p=0.05),
        A.CoarseDropout(num_holes_range=(1, 8), hole_height_range=(0.05, 0.2), hole_width_range=(0.05, 0.2), p=0.5),
    ]


def preset_name_of(spec: dict[str, Any] | None, image_size: int | None) -> str | None:
    """The preset whose pipeline at ``image_size`` is exactly ``spec`` (after a YAML / JSON round trip), else None."""
    import json

    if not isinstance(spec, dict) or not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
        return None
    plain = json.loads(json.dumps(spec))  # tuples -> lists, as config.yaml holds them
    for name in PRESET_NAMES:
        if json.loads(json.dumps(preset(name, image_size))) == plain:
            return name
    return None
