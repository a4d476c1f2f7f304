"""The one owner of session-state keys. Session state holds ids, paths and configs — never tensors.

Shared keys are defined here; page-specific keys carry the page's prefix (``data_``, ``aug_``, ...).
Widgets that need a key take it from here (``key=state.DATA_SORT``), so a key's name is written once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st

# --- shared ----------------------------------------------------------------------------------------
DATASET_PATH = "dataset_path"  # str: spec YAML or folder of the open dataset
WORKSPACE = "workspace"  # str: workspace folder
RECENT_DATASETS = "recent_datasets"  # list[str], most recent first
DATASET_INPUT = "sidebar_dataset_input"  # str: the sidebar's "open a dataset" text input
DEMO_ASKED = "demo_asked"  # bool: the user pressed "Demo dataset" (do not reopen the last dataset instead)
DATASET_ERROR = "dataset_error"  # str | None: why the open dataset cannot be used (set by the sidebar each run)

# --- Data page (prefix data_) ----------------------------------------------------------------------
DATA_TAB = "data_tab"  # str: the open tab of the Data page
DATA_SORT = "data_sort"  # "class" | "count"
DATA_SHARES = "data_shares"  # bool: show shares instead of counts
DATA_LOG = "data_log"  # bool: log-scale y axis
DATA_SPLIT_RUN = "data_split_run"  # str: run id whose split is shown
DATA_META_COLUMN = "data_meta_column"  # str: metadata column drawn against the label
DATA_META_KIND = "data_meta_kind"  # "Stacked bars" | "Heatmap"
DATA_META_NORMALIZE = "data_meta_normalize"  # bool: shares within each metadata value
DATA_PROPERTY = "data_property"  # str: scan column shown as a histogram
DATA_PROPERTY_CLASSES = "data_property_classes"  # list[str]
DATA_PROBLEM_KINDS = "data_problem_kinds"  # list[str]
DATA_PROBLEM_GROUP_PREFIX = "data_problem_group_"  # + severity: bool, that severity's problem list is open
GALLERY_CLASSES = "data_gallery_classes"  # list[str]
GALLERY_META_PREFIX = "data_gallery_meta_"  # + column name: list of kept values
GALLERY_RANGE_PREFIX = "data_gallery_range_"  # + property: (low, high)
GALLERY_PAGE = "data_gallery_page"  # int, 1-based
GALLERY_PER_ROW = "data_gallery_per_row"  # int: thumbnails per row
GALLERY_SELECTED = "data_gallery_selected"  # str: sample_id shown enlarged

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

# --- Train page (prefix train_) --------------------------------------------------------------------
TRAIN_SELECTED_RUN = "train_selected_run"  # str: run id shown in the monitor
TRAIN_MODE = "train_mode"  # "train" | "search": what the Train page launches
TRAIN_SEARCH = "train_search"  # str: search id shown in the search results
TRAIN_TRIAL_PIPELINE = "train_trial_pipeline"  # (label, pipeline dict) | None: a search trial's pipeline for the form
TRAIN_SEARCH_MESSAGE = "train_search_message"  # (kind, text) | None: outcome of the last search action, shown once
TRAIN_LAUNCHER = "train_launcher"  # str: where launches train ("This machine" | "Ray cluster")
TRAIN_RAY_ADDRESS = "train_ray_address"  # str: the Ray cluster's address (auto or HEAD_IP:6379)

# --- Folds / Ensemble / Submit pages ------------------------------------------------------------------
FOLDS_RUN = "folds_run"  # str: run id compared on the Folds page
ENSEMBLE_RUNS = "ensemble_runs"  # list[str]: run ids compared on the Ensemble page
ENSEMBLE_AUG_GROUP = "ens_aug_group"  # list[str]: run directories of the augmentation study compared
ENSEMBLE_AUG_BASELINE = "ens_aug_baseline"  # str: run id the other pipelines are compared against
SUBMIT_CHOICE = "submit_choice"  # dict: the combination chosen for a submission (runs, folds, views, voting, tta)

# --- Grad-CAM page (prefix cam_) -----------------------------------------------------------------------
CAM_MODELS = "cam_models"  # list[str]: labels ("run name · fold k") of the fold models shown side by side
CAM_SOURCE = "cam_source"  # str: where the images come from (engine.explain.SAMPLE_SOURCES key, or "upload")
CAM_SUBSET = "cam_subset"  # "holdout" | "oof"
CAM_COUNT = "cam_count"  # int: images shown
CAM_SEED = "cam_seed"  # int: the draw of "random per class"
CAM_UPLOAD = "cam_upload"  # the uploaded image (st.file_uploader)
CAM_METHOD = "cam_method"  # str: engine.explain method key
CAM_TARGET = "cam_target"  # "predicted" | "true" | "class"
CAM_TARGET_CLASS = "cam_target_class"  # str: the class explained when CAM_TARGET == "class"
CAM_LAYER = "cam_layer"  # str: module name the CAM reads, or "(automatic)"
CAM_ALPHA = "cam_alpha"  # float: heat-map opacity

# --- Review page (prefix review_) and the leaderboard on the Submit page ------------------------------------
REVIEW_RUNS = "review_runs"  # list[str]: run ids whose out-of-sample predictions are reviewed
REVIEW_METHOD = "review_method"  # str: engine.analysis.label_issues METHODS key
REVIEW_RANK_BY = "review_rank_by"  # str: RANK_BY key
REVIEW_SHOW = "review_show"  # "flagged" | "all"
REVIEW_HIDE_DECIDED = "review_hide_decided"  # bool: leave out samples that already have a decision
REVIEW_PAGE = "review_page"  # int, 1-based page of the ranked list
REVIEW_MESSAGE = "review_message"  # (kind, text) | None: outcome of the last decision or relaunch, shown once
REVIEW_RELABEL_PREFIX = "review_relabel_to_"  # + sample id: the class chosen to relabel it to
LB_SUBMISSION = "submit_lb_submission"  # str: submission id whose LB score is being entered

MAX_RECENT = 8
_RECENT_FILE = Path("studio") / "recent_datasets.json"  # under the workspace: survives a studio restart


def init() -> None:
    """Set every shared key once per session (setdefault: a rerun keeps the user's choices)."""
    from engine.workspace import resolve_workspace

    st.session_state.setdefault(WORKSPACE, str(resolve_workspace()))
    st.session_state.setdefault(DATASET_PATH, os.environ.get("FOLD_STUDIO_DATASET") or None)
    st.session_state.setdefault(RECENT_DATASETS, _read_recent(workspace()))
    st.session_state.setdefault(DATASET_INPUT, "")
    st.session_state.setdefault(DATASET_ERROR, None)


def workspace() -> Path:
    return Path(st.session_state[WORKSPACE])


def dataset_path() -> str | None:
    return st.session_state.get(DATASET_PATH)


def dataset_error() -> str | None:
    return st.session_state.get(DATASET_ERROR)


def recent_datasets() -> list[str]:
    return list(st.session_state.get(RECENT_DATASETS, []))


def open_dataset_path(path: str) -> None:
    """Make ``path`` the open dataset (whether or not it loads: the sidebar shows why it does not)."""
    st.session_state[DATASET_PATH] = path


def open_demo_dataset() -> None:
    """Ask for the demo dataset (the sidebar writes it into the workspace when missing)."""
    st.session_state[DATASET_PATH] = None
    st.session_state[DEMO_ASKED] = True


def remember_dataset(path: str) -> None:
    """Put a dataset that opened fine first in the recently-opened list (kept in the workspace too)."""
    recent = [path] + [p for p in recent_datasets() if p != path]
    recent = recent[:MAX_RECENT]
    if recent != recent_datasets():
        st.session_state[RECENT_DATASETS] = recent
        _write_recent(workspace(), recent)


def reset_gallery_page() -> None:
    """Filters changed: start the gallery again at its first page (used as an on_change callback)."""
    st.session_state[GALLERY_PAGE] = 1


def _read_recent(ws: Path) -> list[str]:
    try:
        data = json.loads((ws / _RECENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(p) for p in data if isinstance(p, str)][:MAX_RECENT] if isinstance(data, list) else []


def _write_recent(ws: Path, recent: list[str]) -> None:
    from engine.io import atomic_write_json

    try:
        atomic_write_json(ws / _RECENT_FILE, recent)
    except OSError:  # a read-only workspace only loses the list across restarts
        pass
