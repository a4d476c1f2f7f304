"""The Train page's form over the run configuration. ``run_config_ui`` returns the user's choices.

It is an ``st.form``: typing a learning rate does not rerun the page; only "Launch" does. The form
builds a plain config dict (the same YAML shape as ``configs/demo.yaml``); the engine validates it,
so every message the user sees names the field the engine refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from engine.augment.presets import PRESET_NAMES
from engine.augment.tta import DEFAULT_TTA_VIEWS, TTA_VIEWS
from engine.data import Dataset
from engine.errors import ConfigError

QUICK_MODELS = ["test_efficientnet", "test_resnet", "test_convnext", "test_vit"]
LAB_PIPELINE = "Augmentation lab (current pipeline)"


@st.cache_data(show_spinner=False)
def model_names() -> list[str]:
    """timm's model names with the tiny CPU-friendly test models first."""
    import timm

    names = timm.list_models()
    return QUICK_MODELS + [n for n in names if n not in QUICK_MODELS]


def lab_pipeline_path(workspace: Path) -> Path:
    """Where the Augmentation lab's "Use for training" saves the pipeline."""
    return workspace / "augment" / "current.yaml"


def parse_values(text: str, *, field: str, kind=float) -> list:
    """Parse "0.0, 0.1" into [0.0, 0.1]; ConfigError naming the field for anything else."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"The {field!r} field needs at least one value, e.g. '0.0' or '0.0, 0.1'.")
    try:
        values = [kind(p) for p in parts]
    except ValueError:
        raise ConfigError(f"The {field!r} field must be {kind.__name__} values separated by commas. "
                          f"Got {text!r} instead.") from None
    if len(set(values)) != len(values):
        raise ConfigError(f"The {field!r} field repeats a value: {text!r}.")
    return values


def _default_image_size(dataset: Dataset) -> int:
    return 32 if dataset.name == "digits-demo" else 224


def run_config_ui(dataset: Dataset, workspace: Path, devices: list[str]) -> dict[str, Any] | None:
    """Draw the form; on "Launch" return the config dict (with a ``vary`` mapping for a study), else None."""
    with st.form("train_form", border=True):
        st.markdown("**Model**")
        c1, c2, c3 = st.columns([2, 2, 1])
        model = c1.selectbox("timm model", model_names(), index=0, key="train_model",
                             help="Any timm model. The test_* models are tiny: a quick try on CPU.")
        weights = c2.text_input("Pretrained weights file (optional)", key="train_weights",
                                placeholder="/path/to/model.safetensors",
                                help="A local .safetensors / .pth file for this model. Nothing is downloaded.")
        image_size = c3.number_input("Image size", 8, 1024, _default_image_size(dataset), step=8, key="train_size")

        st.markdown("**Folds**")
        c1, c2, c3 = st.columns(3)
        k = c1.number_input("Folds (k)", 2, 20, 3, key="train_k")
        holdout = c2.slider("Holdout share", 0.0, 0.4, 0.1, 0.05, key="train_holdout",
                            help="Kept out of every fold and predicted by every fold model: it measures what voting "
                                 "across folds gains.")
        groups = ["(none)"] + list(dataset.metadata_columns)
        group = c3.selectbox("Group column", groups, key="train_group",
                             help="Images of one group (e.g. one patient) never straddle folds.")

        st.markdown("**Training**")
        c1, c2, c3, c4 = st.columns(4)
        epochs = c1.number_input("Epochs", 1, 500, 3, key="train_epochs")
        batch = c2.number_input("Batch size", 1, 4096, 64, key="train_batch")
        optimizer = c3.selectbox("Optimizer", ["adamw", "adam", "sgd", "rmsprop"], key="train_opt")
        lr = c4.number_input("Learning rate", 1e-6, 10.0, 3e-3, format="%.5f", key="train_lr")
        c1, c2, c3, c4 = st.columns(4)
        scheduler = c1.selectbox("Scheduler", ["cosine", "step", "none"], key="train_sched")
        loss = c2.selectbox("Loss", ["cross_entropy", "focal"], key="train_loss")
        smoothing = c3.text_input("Label smoothing", "0.0", key="train_ls",
                                  help="Several values separated by commas launch a study: sibling runs sharing one "
                                       "split, compared like for like on the Ensemble page.")
        workers = c4.number_input("Data workers", 0, 64, 2, key="train_workers")

        st.markdown("**Augmentation, TTA, device**")
        c1, c2, c3 = st.columns([2, 2, 1])
        lab = lab_pipeline_path(workspace)
        aug_options = ([LAB_PIPELINE] if lab.is_file() else []) + [f"preset: {p}" for p in PRESET_NAMES]
        augment = c1.selectbox("Augmentation pipeline", aug_options, key="train_aug",
                               index=0 if lab.is_file() else aug_options.index("preset: light"),
                               help="Build and preview pipelines on the Augment page; 'Use for training' there "
                                    "makes them available here.")
        views = c2.multiselect("TTA views", list(TTA_VIEWS), default=list(DEFAULT_TTA_VIEWS), key="train_tta")
        device = c3.selectbox("Device", ["auto", *devices], key="train_device")
        c1, c2, c3 = st.columns(3)
        data_cache = c1.checkbox("Decoded-image cache", True, key="train_cache",
                                 help="Decode and resize each image once into a memory-mapped cache in the "
                                      "workspace, shared by every fold and run; later runs decode nothing.")
        compile_model = c2.checkbox("torch.compile", False, key="train_compile",
                                    help="Compiles the model first: pays off on long GPU runs, slow to start on CPU.")
        auto_batch = c3.checkbox("Find batch size on GPU", False, key="train_auto_batch",
                                 help="On CUDA, halve the batch size until a training step fits in memory.")
        name = st.text_input("Run name (optional)", key="train_name", placeholder="e.g. effnet-ls")
        launched = st.form_submit_button("Launch training", type="primary", icon=":material/rocket_launch:")
    if not weights:
        st.caption(":material/info: No pretrained weights file: the model trains from scratch.")
    if not launched:
        return None
    return build_config(dataset, workspace, model=model, weights=weights, image_size=image_size, k=k,
                        holdout=holdout, group=None if group == "(none)" else group, epochs=epochs, batch=batch,
                        optimizer=optimizer, lr=lr, scheduler=scheduler, loss=loss, smoothing=smoothing,
                        workers=workers, augment=augment, views=views, device=device, name=name,
                        data_cache=data_cache, compile_model=compile_model, auto_batch=auto_batch)


def build_config(dataset: Dataset, workspace: Path, *, model: str, weights: str, image_size: int, k: int,
                 holdout: float, group: str | None, epochs: int, batch: int, optimizer: str, lr: float,
                 scheduler: str, loss: str, smoothing: str, workers: int, augment: str, views: list[str],
                 device: str, name: str, data_cache: bool = True, compile_model: bool = False,
                 auto_batch: bool = False) -> dict[str, Any]:
    """The config dict of the form's choices (pure: testable without Streamlit)."""
    from engine.augment import load_pipeline_file
    from engine.augment.presets import preset

    smoothing_values = parse_values(smoothing, field="label smoothing")
    if augment == LAB_PIPELINE:
        augment_dict = load_pipeline_file(lab_pipeline_path(workspace))
    else:
        augment_dict = preset(augment.removeprefix("preset: "), int(image_size))
    config: dict[str, Any] = {
        "name": name.strip() or None,
        "dataset": str(dataset.spec_path or dataset.root),
        "model": {"name": model, "pretrained_file": weights.strip() or None},
        "image_size": int(image_size),
        "split": {"k": int(k), "holdout_fraction": float(holdout), "group_column": group},
        "train": {"epochs": int(epochs), "batch_size": int(batch), "optimizer": optimizer, "lr": float(lr),
                  "scheduler": scheduler, "loss": loss, "label_smoothing": smoothing_values[0],
                  "num_workers": int(workers), "data_cache": bool(data_cache), "compile": bool(compile_model),
                  "auto_batch_size": bool(auto_batch)},
        "augment": augment_dict,
        "tta_views": list(views),
        "device": device,
    }
    if len(smoothing_values) > 1:
        config["vary"] = {"train.label_smoothing": smoothing_values}
    return config
