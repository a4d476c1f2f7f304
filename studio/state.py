"""The one owner of session-state keys. Session state holds ids, paths and configs — never tensors.

Shared keys are defined here; page-specific keys carry the page's prefix (``data_``, ``aug_``, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

DATASET_PATH = "dataset_path"  # str: spec YAML or folder of the open dataset
WORKSPACE = "workspace"  # str: workspace folder
RECENT_DATASETS = "recent_datasets"  # list[str]

# --- Augmentation lab (prefix aug_) ------------------------------------------------------------------
AUG_SPEC = "aug_spec"  # dict: the pipeline under edit, albumentations' serialized dict (A.to_dict)
AUG_REV = "aug_rev"  # int: moves on when the pipeline changes outside the step widgets (re-keys them)
AUG_STEP_PREFIX = "aug_step_"  # + rev_index_param: one widget per step parameter
AUG_START = "aug_start"  # str: preset chosen in "Start from"
AUG_IMAGE_SIZE = "aug_image_size"  # int: training image size (presets and new crops / resizes)
AUG_ADD = "aug_add"  # str: catalogue transform chosen to add
AUG_YAML_PREFIX = "aug_yaml_"  # + spec hash: the raw YAML editor's text
AUG_UPLOAD = "aug_upload"  # UploadedFile: an imported pipeline file
AUG_MESSAGE = "aug_message"  # (kind, text) | None: outcome of the last import / apply / save, shown once
AUG_MODE = "aug_mode"  # str: preview mode (grid / one image)
AUG_IMAGES = "aug_images"  # int: images in the preview grid
AUG_DRAWS = "aug_draws"  # int: random draws per image
AUG_SEED = "aug_seed"  # int: preview seed
AUG_SAMPLE_SEED = "aug_sample_seed"  # int: which dataset images the preview shows
AUG_MANY_DRAWS = "aug_many_draws"  # int: draws in "one image, many draws" mode
AUG_TTA_VIEWS = "aug_tta_views"  # list[str]: TTA views previewed
AUG_TAB = "aug_tab"  # str: the open tab below the preview


def init() -> None:
    """Set every shared key once per session (setdefault: a rerun keeps the user's choices)."""
    from engine.workspace import resolve_workspace

    st.session_state.setdefault(WORKSPACE, str(resolve_workspace()))
    st.session_state.setdefault(DATASET_PATH, os.environ.get("FOLD_STUDIO_DATASET") or None)
    st.session_state.setdefault(RECENT_DATASETS, [])


def workspace() -> Path:
    return Path(st.session_state[WORKSPACE])


def dataset_path() -> str | None:
    return st.session_state.get(DATASET_PATH)
