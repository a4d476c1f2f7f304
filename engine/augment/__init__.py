"""Augmentation pipelines (albumentations' serialized dicts) and test-time-augmentation views."""

from engine.augment.catalogue import (
    CATALOGUE,
    CATEGORIES,
    ParamSpec,
    TransformSpec,
    default_params,
    list_transforms,
    transform_spec,
)
from engine.augment.pipeline import (
    dump_pipeline,
    load_pipeline_file,
    parse_pipeline_text,
    pipeline_from_dict,
    pipeline_to_dict,
    save_pipeline_file,
)
from engine.augment.presets import PRESET_NAMES, preset
from engine.augment.preview import Draw, PreviewRow, describe_applied, describe_params, preview_pipeline, tta_preview
from engine.augment.steps import Pipeline, Step, build_transform, parse_pipeline
from engine.augment.tta import DEFAULT_TTA_VIEWS, TTA_VIEWS, apply_view_numpy, apply_view_torch, list_tta_views

__all__ = [
    "CATALOGUE",
    "CATEGORIES",
    "Draw",
    "ParamSpec",
    "Pipeline",
    "PreviewRow",
    "Step",
    "TransformSpec",
    "build_transform",
    "default_params",
    "describe_applied",
    "describe_params",
    "list_transforms",
    "preview_pipeline",
    "transform_spec",
    "tta_preview",
    "DEFAULT_TTA_VIEWS",
    "PRESET_NAMES",
    "TTA_VIEWS",
    "apply_view_numpy",
    "apply_view_torch",
    "dump_pipeline",
    "list_tta_views",
    "load_pipeline_file",
    "parse_pipeline",
    "parse_pipeline_text",
    "pipeline_from_dict",
    "pipeline_to_dict",
    "preset",
    "save_pipeline_file",
]
