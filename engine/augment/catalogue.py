"""A curated catalogue of the albumentations transforms competitors use most, with a parameter schema each.

The schema drives the studio's widgets (a slider per float, a range slider per ``(low, high)`` pair,
a checkbox per flag, a select box per choice). Names and bounds follow albumentations 2.0.8's own
pydantic ``InitSchema`` of each transform (tests check every bound against it); the widget bounds are
sometimes narrower than what albumentations accepts, and anything outside them is still reachable
through the raw YAML. Defaults are albumentations' own except where that default is not a useful
starting point (noted in the entry's description or obvious: sizes follow the training image size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError

CATEGORIES = ("geometric", "color", "blur / noise", "dropout", "normalization")

# The kinds of parameter the widgets know how to draw.
PARAM_KINDS = ("float", "int", "bool", "choice", "float_range", "int_range", "int_pair", "float_triple")

BORDER_MODES = (0, 1, 2, 4, 3)  # cv2.BORDER_* constants
BORDER_MODE_LABELS = {0: "constant (fill)", 1: "replicate edge", 2: "reflect", 4: "reflect 101", 3: "wrap"}
DROPOUT_FILLS = (0, 255, "random", "random_uniform", "inpaint_telea")
DROPOUT_FILL_LABELS = {
    0: "black",
    255: "white",
    "random": "random noise per pixel",
    "random_uniform": "one random colour per hole",
    "inpaint_telea": "inpainted (Telea)",
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a transform, as the widgets show it.

    ``kind`` is one of :data:`PARAM_KINDS`; ``*_range`` kinds are ``(low, high)`` pairs with
    ``low <= high`` drawn from ``[min, max]``; ``int_pair`` is two independent ints such as
    ``size=(height, width)``; ``float_triple`` one float per RGB channel. ``follows_image_size``:
    the default is the training image size (crops, resizes).
    """

    name: str
    kind: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple = ()
    labels: dict = field(default_factory=dict)
    help: str = ""
    follows_image_size: bool = False

    def label_of(self, value: Any) -> str:
        return str(self.labels.get(value, value))

    def coerce(self, value: Any) -> Any:
        """A stored value (as a spec holds it) in this widget's form, or None when the widget cannot show it
        (another form, such as Affine's separate x / y ranges, or outside the widget's bounds)."""
        if self.kind == "bool":
            return value if isinstance(value, bool) else None
        if self.kind == "choice":
            return next((c for c in self.choices if c == value and type(c) is not bool), None)
        if isinstance(value, dict) and set(value) == {"x", "y"} and value["x"] == value["y"]:
            value = value["x"]  # albumentations stores Affine's scale / shift / shear per axis
        size = {"float": 0, "int": 0, "float_triple": 3}.get(self.kind, 2)
        if size == 3 and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value] * 3
        numbers = [value] if size == 0 else value
        if not isinstance(numbers, (list, tuple)) or len(numbers) != max(size, 1):
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            return None
        if not all(self.min <= v <= self.max for v in numbers):
            return None
        if self.kind in ("int", "int_range", "int_pair"):
            if any(float(v) != int(v) for v in numbers):
                return None
            numbers = [int(v) for v in numbers]
        else:
            numbers = [float(v) for v in numbers]
        if self.kind in ("float_range", "int_range") and numbers[0] > numbers[1]:
            return None
        return numbers[0] if size == 0 else tuple(numbers)


@dataclass(frozen=True)
class TransformSpec:
    """A catalogue entry: the albumentations class name, its category, a line for people, its parameters."""

    name: str
    category: str
    description: str
    params: tuple[ParamSpec, ...] = ()
    default_p: float = 0.5

    def param(self, name: str) -> ParamSpec:
        for spec in self.params:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"{self.name} has no catalogue parameter {name!r}; its parameters: {[p.name for p in self.params]}."
        )


def _f(name, default, lo, hi, step=0.01, help=""):
    return ParamSpec(name, "float", default, lo, hi, step, help=help)


def _i(name, default, lo, hi, step=1, help="", sized=False):
    return ParamSpec(name, "int", default, lo, hi, step, help=help, follows_image_size=sized)


def _b(name, default, help=""):
    return ParamSpec(name, "bool", default, help=help)


def _c(name, default, choices, labels=None, help=""):
    return ParamSpec(name, "choice", default, choices=tuple(choices), labels=dict(labels or {}), help=help)


def _fr(name, default, lo, hi, step=0.01, help=""):
    return ParamSpec(name, "float_range", tuple(default), lo, hi, step, help=help)


def _ir(name, default, lo, hi, step=1, help=""):
    return ParamSpec(name, "int_range", tuple(default), lo, hi, step, help=help)


def _border(default=0):
    return _c("border_mode", default, BORDER_MODES, BORDER_MODE_LABELS, help="How pixels outside the image are filled.")


def _fill():
    return _c("fill", 0, DROPOUT_FILLS, DROPOUT_FILL_LABELS, help="What the removed pixels become.")


_SIZE_MAX = 2048
_HW = "Output height and width in pixels (defaults to the training image size)."

_ENTRIES: tuple[TransformSpec, ...] = (
    # --- geometric ---------------------------------------------------------------------------------
    TransformSpec("HorizontalFlip", "geometric", "Mirror left-right."),
    TransformSpec("VerticalFlip", "geometric", "Mirror top-bottom (for images with no 'up': satellite, microscopy)."),
    TransformSpec("RandomRotate90", "geometric", "Rotate by a random multiple of 90 degrees."),
    TransformSpec("Transpose", "geometric", "Swap rows and columns (mirror on the main diagonal)."),
    TransformSpec("SquareSymmetry", "geometric", "One of the 8 symmetries of a square: flips and 90-degree turns."),
    TransformSpec(
        "Rotate",
        "geometric",
        "Rotate by a random angle in degrees.",
        (_fr("limit", (-15, 15), -180, 180, 1, help="Angle range in degrees."), _border()),
    ),
    TransformSpec(
        "Affine",
        "geometric",
        "Zoom, shift, rotate and shear in one step.",
        (
            _fr("scale", (0.9, 1.1), 0.5, 2.0, help="Zoom factor range (1 = unchanged)."),
            _fr("translate_percent", (-0.0625, 0.0625), -0.5, 0.5, help="Shift as a fraction of the image size."),
            _fr("rotate", (-15, 15), -180, 180, 1, help="Angle range in degrees."),
            _fr("shear", (0, 0), -45, 45, 1, help="Shear angle range in degrees."),
            _border(),
        ),
    ),
    TransformSpec(
        "Perspective",
        "geometric",
        "Random four-point perspective warp, as if seen from another angle.",
        (_fr("scale", (0.05, 0.1), 0.0, 0.3, help="How far the corners move (fraction of the image)."), _border()),
    ),
    TransformSpec(
        "ElasticTransform",
        "geometric",
        "Smooth local rubber-sheet deformation (cells, handwriting, tissue).",
        (
            _f("alpha", 1.0, 0.0, 200.0, 1.0, help="Strength of the displacement."),
            _f("sigma", 50.0, 1.0, 100.0, 1.0, help="Smoothness of the displacement (larger = smoother)."),
            _border(),
        ),
    ),
    TransformSpec(
        "GridDistortion",
        "geometric",
        "Stretch and squeeze the image along a coarse grid.",
        (
            _i("num_steps", 5, 1, 15, help="Grid cells per side."),
            _fr("distort_limit", (-0.3, 0.3), -0.5, 0.5, help="How much each grid line moves."),
            _border(),
        ),
    ),
    TransformSpec(
        "OpticalDistortion",
        "geometric",
        "Barrel / pincushion lens distortion.",
        (
            _fr("distort_limit", (-0.05, 0.05), -0.5, 0.5, help="Distortion strength range."),
            _c("mode", "camera", ("camera", "fisheye")),
            _border(),
        ),
    ),
    TransformSpec(
        "RandomResizedCrop",
        "geometric",
        "Crop a random area and aspect ratio, then resize: the standard training crop.",
        (
            ParamSpec("size", "int_pair", None, 8, _SIZE_MAX, 1, help=_HW, follows_image_size=True),
            _fr("scale", (0.08, 1.0), 0.01, 1.0, help="Area of the crop as a fraction of the image."),
            _fr("ratio", (0.75, 1.3333333333333333), 0.25, 4.0, help="Aspect ratio (width / height) of the crop."),
        ),
        default_p=1.0,
    ),
    TransformSpec(
        "RandomCrop",
        "geometric",
        "Crop a random window of a fixed size (padded first when the image is smaller).",
        (
            _i("height", None, 8, _SIZE_MAX, sized=True, help="Crop height in pixels."),
            _i("width", None, 8, _SIZE_MAX, sized=True, help="Crop width in pixels."),
            _b("pad_if_needed", True, help="Pad images smaller than the crop instead of failing."),
        ),
        default_p=1.0,
    ),
    TransformSpec(
        "CenterCrop",
        "geometric",
        "Crop the central window of a fixed size (padded first when the image is smaller).",
        (
            _i("height", None, 8, _SIZE_MAX, sized=True, help="Crop height in pixels."),
            _i("width", None, 8, _SIZE_MAX, sized=True, help="Crop width in pixels."),
            _b("pad_if_needed", True, help="Pad images smaller than the crop instead of failing."),
        ),
        default_p=1.0,
    ),
    TransformSpec(
        "Resize",
        "geometric",
        "Resize to a fixed height and width (the aspect ratio may change).",
        (
            _i("height", None, 8, _SIZE_MAX, sized=True, help="Output height in pixels."),
            _i("width", None, 8, _SIZE_MAX, sized=True, help="Output width in pixels."),
        ),
        default_p=1.0,
    ),
    TransformSpec(
        "LongestMaxSize",
        "geometric",
        "Scale so the longer side equals a size, keeping the aspect ratio.",
        (_i("max_size", None, 8, _SIZE_MAX, sized=True, help="Length of the longer side in pixels."),),
        default_p=1.0,
    ),
    TransformSpec(
        "SmallestMaxSize",
        "geometric",
        "Scale so the shorter side equals a size, keeping the aspect ratio.",
        (_i("max_size", None, 8, _SIZE_MAX, sized=True, help="Length of the shorter side in pixels."),),
        default_p=1.0,
    ),
    TransformSpec(
        "PadIfNeeded",
        "geometric",
        "Pad images smaller than a size up to it (often after LongestMaxSize).",
        (
            _i("min_height", None, 8, _SIZE_MAX, sized=True, help="Minimum height after padding."),
            _i("min_width", None, 8, _SIZE_MAX, sized=True, help="Minimum width after padding."),
            _border(),
        ),
        default_p=1.0,
    ),
    # --- color -------------------------------------------------------------------------------------
    TransformSpec(
        "RandomBrightnessContrast",
        "color",
        "Random brightness and contrast change.",
        (
            _fr("brightness_limit", (-0.2, 0.2), -1.0, 1.0, help="Brightness change (fraction of the maximum)."),
            _fr("contrast_limit", (-0.2, 0.2), -1.0, 1.0, help="Contrast change (fraction)."),
        ),
    ),
    TransformSpec(
        "HueSaturationValue",
        "color",
        "Random shift of hue, saturation and value (brightness) in HSV space.",
        (
            _fr("hue_shift_limit", (-20, 20), -90, 90, 1, help="Hue shift (OpenCV's 0-180 hue scale)."),
            _fr("sat_shift_limit", (-30, 30), -100, 100, 1, help="Saturation shift (0-255 scale)."),
            _fr("val_shift_limit", (-20, 20), -100, 100, 1, help="Value shift (0-255 scale)."),
        ),
    ),
    TransformSpec(
        "ColorJitter",
        "color",
        "torchvision-style jitter of brightness, contrast, saturation and hue (hue default narrowed to +-0.1).",
        (
            _fr("brightness", (0.8, 1.2), 0.0, 3.0, help="Brightness factor range (1 = unchanged)."),
            _fr("contrast", (0.8, 1.2), 0.0, 3.0, help="Contrast factor range (1 = unchanged)."),
            _fr("saturation", (0.8, 1.2), 0.0, 3.0, help="Saturation factor range (1 = unchanged)."),
            _fr("hue", (-0.1, 0.1), -0.5, 0.5, help="Hue shift as a fraction of the colour wheel."),
        ),
    ),
    TransformSpec(
        "RGBShift",
        "color",
        "Shift each of the red, green and blue channels by a random amount.",
        (
            _fr("r_shift_limit", (-20, 20), -100, 100, 1),
            _fr("g_shift_limit", (-20, 20), -100, 100, 1),
            _fr("b_shift_limit", (-20, 20), -100, 100, 1),
        ),
    ),
    TransformSpec(
        "CLAHE",
        "color",
        "Contrast-limited adaptive histogram equalization: local contrast boost (X-rays, fundus photos).",
        (
            _fr("clip_limit", (1.0, 4.0), 1.0, 16.0, 0.1, help="Contrast limit range."),
            ParamSpec("tile_grid_size", "int_pair", (8, 8), 2, 32, 1, help="Tiles per side (rows, columns)."),
        ),
    ),
    TransformSpec(
        "RandomGamma",
        "color",
        "Random gamma curve; the limits are in percent (100 = unchanged).",
        (_fr("gamma_limit", (80, 120), 20, 300, 1, help="Gamma range in percent."),),
    ),
    TransformSpec(
        "ToGray",
        "color",
        "Convert to grayscale (kept as 3 channels).",
        (_c("method", "weighted_average", ("weighted_average", "from_lab", "desaturation", "average", "max", "pca")),),
    ),
    TransformSpec("ChannelShuffle", "color", "Randomly reorder the R, G, B channels."),
    TransformSpec(
        "Posterize",
        "color",
        "Reduce the number of bits per colour channel.",
        (_ir("num_bits", (4, 4), 1, 8, help="Bits kept per channel."),),
    ),
    TransformSpec(
        "Solarize",
        "color",
        "Invert pixels above a threshold.",
        (_fr("threshold_range", (0.5, 0.5), 0.0, 1.0, help="Threshold as a fraction of the maximum value."),),
    ),
    TransformSpec(
        "Equalize",
        "color",
        "Histogram equalization.",
        (_c("mode", "cv", ("cv", "pil")), _b("by_channels", True, help="Equalize each channel on its own.")),
    ),
    TransformSpec("InvertImg", "color", "Invert the image (255 - pixel)."),
    TransformSpec(
        "RandomToneCurve",
        "color",
        "Random S-shaped tone curve: lighter or darker mid-tones.",
        (_f("scale", 0.1, 0.0, 1.0, help="How far the curve bends."), _b("per_channel", False)),
    ),
    # --- blur / noise ------------------------------------------------------------------------------
    TransformSpec(
        "GaussianBlur",
        "blur / noise",
        "Gaussian blur with a random kernel size and sigma.",
        (
            _ir("blur_limit", (3, 7), 3, 31, 2, help="Kernel size range in pixels (odd)."),
            _fr("sigma_limit", (0.5, 3.0), 0.1, 10.0, 0.1, help="Sigma range (0 would divide by zero)."),
        ),
    ),
    TransformSpec(
        "MotionBlur",
        "blur / noise",
        "Blur along a random line, like camera shake.",
        (_ir("blur_limit", (3, 7), 3, 31, 2, help="Kernel size range in pixels (odd)."),),
    ),
    TransformSpec(
        "MedianBlur",
        "blur / noise",
        "Median filter with a random aperture.",
        (_ir("blur_limit", (3, 7), 3, 31, 2, help="Aperture range in pixels (odd)."),),
    ),
    TransformSpec(
        "GaussNoise",
        "blur / noise",
        "Additive Gaussian noise (default narrowed from albumentations' strong 0.2-0.44).",
        (
            _fr("std_range", (0.02, 0.1), 0.0, 1.0, help="Noise standard deviation as a fraction of 255."),
            _b("per_channel", True, help="Independent noise per colour channel."),
        ),
    ),
    TransformSpec(
        "ISONoise",
        "blur / noise",
        "Camera sensor noise: colour shifts and luminance noise.",
        (
            _fr("color_shift", (0.01, 0.05), 0.0, 1.0, help="Hue shift range of the noise."),
            _fr("intensity", (0.1, 0.5), 0.0, 2.0, help="Strength of the luminance noise."),
        ),
    ),
    TransformSpec(
        "ImageCompression",
        "blur / noise",
        "JPEG / WebP compression artefacts (default quality 70-100 instead of albumentations' 99-100).",
        (
            _ir("quality_range", (70, 100), 1, 100, help="Quality range (100 = best)."),
            _c("compression_type", "jpeg", ("jpeg", "webp")),
        ),
    ),
    TransformSpec(
        "Sharpen",
        "blur / noise",
        "Sharpen and blend with the original.",
        (
            _fr("alpha", (0.2, 0.5), 0.0, 1.0, help="Blend: 0 = original, 1 = fully sharpened."),
            _fr("lightness", (0.5, 1.0), 0.0, 2.0, help="Lightness of the sharpened image."),
        ),
    ),
    TransformSpec(
        "Downscale",
        "blur / noise",
        "Shrink and enlarge back: loses detail like a low-resolution source.",
        (_fr("scale_range", (0.25, 0.25), 0.05, 0.99, help="Downscale factor range."),),
    ),
    # --- dropout -----------------------------------------------------------------------------------
    TransformSpec(
        "CoarseDropout",
        "dropout",
        "Cut out random rectangles (Cutout).",
        (
            _ir("num_holes_range", (1, 2), 1, 32, help="Number of holes."),
            _fr("hole_height_range", (0.1, 0.2), 0.01, 1.0, help="Hole height as a fraction of the image height."),
            _fr("hole_width_range", (0.1, 0.2), 0.01, 1.0, help="Hole width as a fraction of the image width."),
            _fill(),
        ),
    ),
    TransformSpec(
        "GridDropout",
        "dropout",
        "Drop squares on a regular grid (GridMask).",
        (
            _f("ratio", 0.5, 0.05, 1.0, help="Fraction of each grid cell that is dropped."),
            _b("random_offset", True, help="Shift the grid randomly."),
            _fill(),
        ),
    ),
    TransformSpec(
        "Erasing",
        "dropout",
        "Random erasing: one rectangle of random area and aspect ratio.",
        (
            # Bounds keep every rectangle inside the image (scale * ratio <= 1, scale <= ratio): albumentations
            # 2.0.8's Erasing crashes when it finds no rectangle that fits.
            _fr("scale", (0.02, 0.33), 0.01, 0.4, help="Area as a fraction of the image."),
            _fr("ratio", (0.4, 2.5), 0.4, 2.5, 0.1, help="Aspect ratio range (height / width)."),
            _fill(),
        ),
    ),
    # --- normalization -----------------------------------------------------------------------------
    TransformSpec(
        "Normalize",
        "normalization",
        "Subtract mean, divide by std. Usually left out: training normalizes with the model's own values.",
        (
            ParamSpec(
                "mean", "float_triple", (0.485, 0.456, 0.406), 0.0, 1.0, 0.001, help="Per-channel mean (R, G, B)."
            ),
            ParamSpec(
                "std", "float_triple", (0.229, 0.224, 0.225), 0.001, 1.0, 0.001, help="Per-channel std (R, G, B)."
            ),
            _f("max_pixel_value", 255.0, 1.0, 65535.0, 1.0, help="Pixel values are divided by this first."),
            _c(
                "normalization",
                "standard",
                ("standard", "image", "image_per_channel", "min_max", "min_max_per_channel"),
            ),
        ),
        default_p=1.0,
    ),
)

CATALOGUE: dict[str, TransformSpec] = {entry.name: entry for entry in _ENTRIES}


def list_transforms(category: str | None = None) -> list[str]:
    """Catalogue transform names (in catalogue order), optionally of one category."""
    if category is not None and category not in CATEGORIES:
        raise ConfigError(f"The 'category' parameter must be a str among {list(CATEGORIES)}. Got {category!r} instead.")
    return [e.name for e in _ENTRIES if category is None or e.category == category]


def transform_spec(name: str) -> TransformSpec:
    """The catalogue entry of a transform; :class:`ConfigError` when it is not in the catalogue."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ConfigError(
            f"{name!r} is not in the transform catalogue; choose among {list(CATALOGUE)} or write it in the raw YAML."
        ) from None


def default_params(name: str, image_size: int = 224) -> dict[str, Any]:
    """The catalogue's starting parameters of a transform (sizes set to ``image_size``)."""
    out: dict[str, Any] = {}
    for spec in transform_spec(name).params:
        if spec.follows_image_size:
            out[spec.name] = (image_size, image_size) if spec.kind == "int_pair" else image_size
        else:
            out[spec.name] = spec.default
    return out
