"""Class activation maps of a trained model with pytorch-grad-cam: where in the image the evidence was.

:func:`compute_cams` runs one CAM method over a batch of RGB uint8 images and returns maps in [0, 1]
together with the model's predictions; :func:`overlay` draws a map over its image.

Guarantees: computed in fp32 with autocast off (a half-precision model is explained on an fp32
copy), on the device the model is on, in batches; the model comes back as it went in — each
module's train/eval mode, the parameters' ``.grad``, no hooks left behind — and two threads (two
studio sessions sharing one cached model) never interleave on the same model.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from pytorch_grad_cam import (
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from engine.errors import ConfigError
from engine.explain.guard import model_guard
from engine.explain.layers import TargetLayer, find_target_layer, model_name, probe_outputs
from engine.training.data import PredictionInput


class _QuietScoreCAM(ScoreCAM):
    """ScoreCAM without its per-image tqdm bars (they would flood the studio's console).

    Same weights as the library's ``ScoreCAM.get_cam_weights``: each activation channel, min-max
    scaled and upsampled, masks the input; the softmax of the target scores over channels weighs them.
    """

    batch_size = 64

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        with torch.no_grad():
            acts = torch.from_numpy(activations).to(self.device)
            up = nn.functional.interpolate(acts, size=input_tensor.shape[-2:], mode="bilinear", align_corners=True)
            flat = up.flatten(2)
            lo, hi = flat.min(dim=-1)[0][..., None, None], flat.max(dim=-1)[0][..., None, None]
            up = (up - lo) / (hi - lo + 1e-8)
            scores = []
            for target, image, masks in zip(targets, input_tensor, up, strict=True):
                per_image = []
                for i in range(0, masks.shape[0], self.batch_size):
                    masked = image[None] * masks[i:i + self.batch_size, None]
                    per_image.append(target(self.model(masked)).float())
                scores.append(torch.cat(per_image))
            return torch.softmax(torch.stack(scores), dim=-1).cpu().numpy()


@dataclass(frozen=True)
class CamMethod:
    """One CAM method: its key, a display label, whether the map depends on the target class."""

    key: str
    label: str
    cam_class: type[BaseCAM]
    uses_target: bool
    description: str


_METHODS: dict[str, CamMethod] = {m.key: m for m in [
    CamMethod("gradcam", "Grad-CAM", GradCAM, True,
              "feature maps weighted by the average gradient of the class score (the classic)"),
    CamMethod("gradcam++", "Grad-CAM++", GradCAMPlusPlus, True,
              "like Grad-CAM with higher-order gradient weights; better when a class appears several times"),
    CamMethod("xgradcam", "XGrad-CAM", XGradCAM, True,
              "gradients weighted by the normalised activations (axiom-based Grad-CAM)"),
    CamMethod("hirescam", "HiResCAM", HiResCAM, True,
              "gradient times activation per location, without averaging: faithful to what the model computes"),
    CamMethod("layercam", "LayerCAM", LayerCAM, True,
              "positive gradients times activations per location; sharper maps on earlier layers"),
    CamMethod("scorecam", "Score-CAM", _QuietScoreCAM, True,
              "gradient-free: masks the image with each channel and measures the class score (one pass per "
              "channel: slow on big models)"),
    CamMethod("eigencam", "EigenCAM", EigenCAM, False,
              "first principal component of the feature maps: what the layer responds to most, whatever the class"),
    CamMethod("eigengradcam", "EigenGrad-CAM", EigenGradCAM, True,
              "first principal component of gradient times activation: class-aware and less noisy"),
]}
# Left out: FullGrad ignores the target layer and only reads layers whose type is exactly Conv2d or
# BatchNorm2d (timm's BatchNormAct2d is missed); AblationCAM needs a model-specific ablation layer.


def list_cam_methods() -> list[str]:
    """Keys accepted by :func:`compute_cams` (``method=``)."""
    return list(_METHODS)


def get_cam_method(method: str) -> CamMethod:
    """The :class:`CamMethod` for a key; :class:`ConfigError` listing the keys when unknown."""
    try:
        return _METHODS[method]
    except (KeyError, TypeError):
        raise ConfigError(f"The 'method' parameter must be a str among {list(_METHODS)}. "
                          f"Got {method!r} instead.") from None


@dataclass(frozen=True)
class CamResult:
    """CAMs of N images and what the model predicted for them.

    ``cams`` (N, H, W) float32 in [0, 1] at the model's input size (H, W) — :func:`overlay` resizes
    a map to its image; ``predicted`` (N,) int64; ``probabilities`` (N, C) float32 (softmax of the
    logits); ``targets`` (N,) int64, the class each map explains; ``layer`` the layer read.
    """

    cams: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    targets: np.ndarray
    method: str
    layer: TargetLayer

    @property
    def confidence(self) -> np.ndarray:
        """(N,) probability of the predicted class."""
        return self.probabilities[np.arange(len(self.predicted)), self.predicted]


def _prediction_input(data_config: Mapping | PredictionInput) -> PredictionInput:
    """A run's :class:`PredictionInput` as given, or one from a timm data config (resize + mean/std only)."""
    if isinstance(data_config, PredictionInput):
        return data_config
    try:
        input_size = tuple(int(v) for v in data_config["input_size"])
        mean = np.asarray(data_config["mean"], dtype=np.float32).reshape(-1)
        std = np.asarray(data_config["std"], dtype=np.float32).reshape(-1)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError("The 'data_config' parameter must hold 'input_size' (C, H, W), 'mean' and 'std' "
                          f"(as timm's resolve_data_config returns). Got {data_config!r} instead.") from e
    if len(input_size) != 3 or input_size[0] != 3 or min(input_size) < 1 or len(mean) != 3 or len(std) != 3:
        raise ConfigError(f"The 'data_config' parameter must describe 3-channel input: input_size (3, H, W), "
                          f"3 means and 3 stds. Got input_size={input_size}, mean={mean.tolist()}, std={std.tolist()}.")
    return PredictionInput.from_data_config({"input_size": input_size, "mean": mean.tolist(), "std": std.tolist()})


def _check_images(images) -> list[np.ndarray]:
    images = list(images)
    if not images:
        raise ConfigError("The 'images' parameter must hold at least one image; got none.")
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ConfigError(f"Image {i} must be an RGB uint8 array (H, W, 3), as engine.load_rgb returns; "
                              f"got {img.dtype} {img.shape}.")
    return images


def preprocess(images: Sequence[np.ndarray], data_config: Mapping | PredictionInput,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """RGB uint8 (H, W, 3) images -> the float32 batch (N, 3, H_in, W_in) the model saw in prediction,
    through :meth:`engine.training.data.PredictionInput.batch` (the steps of prediction's loader)."""
    return _prediction_input(data_config).batch(images, device)


def _targets_array(targets, n: int, num_classes: int) -> np.ndarray | None:
    if targets is None:
        return None
    arr = np.full(n, targets) if np.isscalar(targets) else np.asarray(list(targets))
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"The 'targets' parameter must be None, one class index, or {n} class indices (one per "
                          f"image). Got {targets!r} instead.")
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ConfigError(f"Target class {int(bad[0])} is out of range: the model has {num_classes} classes "
                          f"(0..{num_classes - 1}).")
    return arr.astype(np.int64)


def _num_classes(model: nn.Module, input_size) -> int:
    n = getattr(model, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    return int(probe_outputs(model, input_size)[1][-1])


def compute_cams(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    data_config: Mapping | PredictionInput,
    method: str = "gradcam",
    targets: int | Sequence[int] | None = None,
    layer: str | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
) -> CamResult:
    """Class activation maps of ``images`` for ``model``.

    ``images``: RGB uint8 arrays (H, W, 3), any sizes (an (N, H, W, 3) array works), resized to the
    model's input size. ``data_config``: for a run's fold model, the run's
    :class:`~engine.training.data.PredictionInput` (``run_prediction_input(config, data_config)``), so the
    CAM explains exactly the input prediction gave the model (the run's own ``A.Normalize``, its image
    shrink); or, for any model, timm's ``resolve_data_config`` dict (``input_size`` (3, H, W), ``mean``,
    ``std``): resize and normalize only. ``method``: one of :func:`list_cam_methods`. ``targets``: the
    class each map explains — None for the predicted class, one index for all images, or one per
    image. ``layer``: a module name, default the automatic choice (:mod:`engine.explain.layers`).
    ``device``: None computes where the model's parameters are; a device moves the model there.
    Raises :class:`ConfigError` for an unknown method, a target out of range, a model without a
    usable layer.
    """
    spec = get_cam_method(method)
    images = _check_images(images)
    prepare = _prediction_input(data_config)
    input_size = (3, *prepare.size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be a positive int. Got {batch_size!r} instead.")
    if device is not None:
        model.to(device)
    if next(model.parameters(), None) is None:
        raise ConfigError(f"Model {model_name(model)!r} has no parameters; a CAM needs a trained network.")

    with model_guard(model):
        # An fp16 / bf16 model is explained on an fp32 copy: CAM gradients underflow in half precision.
        is_fp32 = all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())
        work = model if is_fp32 else copy.deepcopy(model).float()
        target_layer = find_target_layer(work, input_size, layer)
        target_arr = _targets_array(targets, len(images), _num_classes(work, input_size))
        dev = next(work.parameters()).device
        cam = spec.cam_class(model=work, target_layers=[target_layer.module(work)],
                             reshape_transform=target_layer.reshape_transform())
        # Not `with cam:` — BaseCAM.__exit__ swallows IndexError (prints it and returns None).
        try:
            maps, logits = [], []
            with torch.autocast(device_type=dev.type, enabled=False), torch.set_grad_enabled(cam.uses_gradients):
                for start in range(0, len(images), batch_size):
                    x = prepare.batch(images[start:start + batch_size], dev)
                    chunk = None if target_arr is None else target_arr[start:start + batch_size]
                    maps.append(cam(input_tensor=x, targets=None if chunk is None else
                                    [ClassifierOutputTarget(int(t)) for t in chunk]))
                    logits.append(cam.outputs.detach().float().cpu())
                    cam.outputs = None  # drop the graph kept by retain_graph before the next batch
        finally:
            cam.activations_and_grads.release()
    logits_t = torch.cat(logits)
    predicted = logits_t.argmax(dim=1).numpy().astype(np.int64)
    return CamResult(
        cams=np.clip(np.concatenate(maps).astype(np.float32), 0.0, 1.0),
        predicted=predicted,
        probabilities=torch.softmax(logits_t, dim=1).numpy().astype(np.float32),
        targets=predicted.copy() if target_arr is None else target_arr,
        method=spec.key,
        layer=target_layer,
    )


def overlay(image: np.ndarray, cam: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Draw ``cam`` (h, w) in [0, 1] over ``image`` (H, W, 3) uint8 as a JET heat map (blue low, red high).

    Our own blend rather than pytorch-grad-cam's ``show_cam_on_image`` (which wants a float image and
    rescales the blend by its maximum, brightening dark images): ``(1 - alpha) * image + alpha * heat``,
    with the map resized (bilinear) to the image. Returns uint8 (H, W, 3).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError("The 'image' parameter must be an RGB uint8 array (H, W, 3); "
                          f"got {image.dtype} {image.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"The 'alpha' parameter must be in [0, 1]. Got {alpha!r} instead.")
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ConfigError(f"The 'cam' parameter must be a 2-D map (h, w); got shape {cam.shape}.")
    if cam.shape != image.shape[:2]:
        cam = cv2.resize(cam, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.uint8(np.rint(255 * np.clip(cam, 0.0, 1.0))), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
