"""Explain predictions: class activation maps (pytorch-grad-cam) with target layers chosen for timm models.

- :func:`compute_cams` — maps in [0, 1] plus predictions for a batch of RGB uint8 images
- :func:`list_cam_methods`, :func:`get_cam_method` — the CAM methods offered
- :func:`overlay` — a map drawn over its image
- :func:`find_target_layer`, :func:`list_target_layers` — which layer a CAM reads (CNN, channels-last, ViT)
- :func:`select_samples` — which images to explain (mistakes, least confident, a few per class)
"""

from engine.explain.cam import CamMethod, CamResult, compute_cams, get_cam_method, list_cam_methods, overlay
from engine.explain.layers import TargetLayer, default_target_layer, find_target_layer, list_target_layers
from engine.explain.samples import SAMPLE_SOURCES, list_sample_sources, select_samples

__all__ = [
    "SAMPLE_SOURCES", "CamMethod", "CamResult", "TargetLayer", "compute_cams", "default_target_layer",
    "find_target_layer", "get_cam_method", "list_cam_methods", "list_sample_sources", "list_target_layers", "overlay",
    "select_samples",
]
