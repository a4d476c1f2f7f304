"""The Train page's form over the run configuration. ``run_config_ui`` returns the user's choices.

The model, its pretrained weights and "Allow downloads" sit above the form, so the weights' status
(engine.training.pretrained.describe_pretrained) and the defaults that follow the model (image size)
update at each choice. The rest is an ``st.form``: typing a learning rate does not rerun the page;
only "Launch" does. The form builds a plain config dict (the same YAML shape as
``configs/demo.yaml``); the engine validates it, so every message the user sees names the field the
engine refused. Defaults come from engine.training.defaults: image size from the model and the
images, k from the smallest class.
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


# Session-state keys of the Train form (prefix train_). The *_basis keys remember what a default was computed
# for, so a default follows the model / dataset until the user's choice differs from it.
MODEL_KEY, PRETRAINED_KEY, WEIGHTS_KEY, DOWNLOAD_KEY = "train_model", "train_pretrained", "train_weights", "train_allow_download"
SIZE_KEY, K_KEY = "train_size", "train_k"
PRETRAINED_BASIS, SIZE_BASIS, K_BASIS = "train_pretrained_basis", "train_size_basis", "train_k_basis"
PRETRAINED_CHOICES = {"hub": "timm's pretrained (hub cache)", "none": "none (from scratch)", "file": "a local file"}
AVAILABILITY_ICONS = {"cached": ":material/check_circle:", "local file": ":material/check_circle:",
                      "would download": ":material/cloud_download:", "missing": ":material/error:",
                      "none": ":material/info:"}


@st.cache_data(max_entries=8, show_spinner=False)
def _typical_side(dataset_path: str, mtime: float, scan_key: object, _dataset: Dataset, _scan) -> int | None:
    from engine.training.defaults import typical_image_side

    table = None if _scan is None else _scan.table[_scan.table["split"] == "train"]
    return typical_image_side(_dataset.manifest["path"].tolist(), scan=table)


def typical_side(dataset: Dataset) -> int | None:
    """The dataset's median shorter side: from its scan when the Data page ran one, else from image headers."""
    from studio import loaders, state

    path = state.dataset_path() or str(dataset.spec_path or dataset.root)
    token = loaders.scan_token(path, state.workspace())  # keyed as the Data page keys its scan
    scan = loaders.cached_scan(token)
    return _typical_side(path, loaders.mtime(path), token if scan is not None else None, dataset, scan)


def pretrained_value(choice: str, weights: str) -> str:
    """'model.pretrained' of the form's choice: 'hub', 'none', or the file path typed."""
    return weights.strip() if choice == "file" else choice


def default_pretrained_choice(model: str, allow_download: bool) -> str:
    """timm's weights when they can be had (cached, or downloads allowed), else from scratch."""
    from engine.training.pretrained import describe_pretrained

    return "hub" if describe_pretrained(model, "hub", allow_download).uses_weights else "none"


def session_pretrained() -> tuple[str, str, bool]:
    """(model, model.pretrained, allow_download) as the Train form holds them (its defaults before a visit)."""
    from engine.offline import user_forbids_downloads

    ss = st.session_state
    model = ss.get(MODEL_KEY) or QUICK_MODELS[0]
    allow = bool(ss.get(DOWNLOAD_KEY)) and not user_forbids_downloads()
    choice = ss.get(PRETRAINED_KEY) or default_pretrained_choice(model, allow)
    return model, pretrained_value(choice, ss.get(WEIGHTS_KEY, "")), allow


def default_size(dataset: Dataset | None, model: str, pretrained: str):
    """The image size default (engine.training.defaults) for the model and the dataset's images."""
    from engine.training.defaults import default_image_size

    return default_image_size(model, pretrained, typical_side(dataset) if dataset is not None else None)


def session_default_size(dataset: Dataset | None) -> int:
    """The image size the Train form defaults to now; the Augmentation lab starts from it."""
    model, pretrained, _ = session_pretrained()
    try:
        return default_size(dataset, model, pretrained).size
    except ConfigError:  # a local file typed on the Train page: the model's size still applies
        return default_size(dataset, model, "none").size


def _follow(key: str, basis_key: str, basis: object, value: object) -> None:
    """Set ``key`` to ``value`` when the basis its default was computed from changed (before its widget exists)."""
    ss = st.session_state
    if ss.get(basis_key) != basis:
        ss[basis_key] = basis
        ss[key] = value


def weights_ui(dataset: Dataset):
    """Model, pretrained weights and "Allow downloads", outside the form so the status follows each choice.

    Returns (model, model.pretrained, allow_download, PretrainedStatus).
    """
    from engine.offline import user_forbids_downloads
    from engine.training.pretrained import describe_pretrained

    st.markdown("**Model**")
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    model = c1.selectbox("timm model", model_names(), index=0, key=MODEL_KEY,
                         help="Any timm model. The test_* models are tiny: a quick try on CPU.")
    forbidden = user_forbids_downloads()
    allow = bool(st.session_state.get(DOWNLOAD_KEY)) and not forbidden
    if st.session_state.get(PRETRAINED_KEY) != "file":  # follows the model until the user picks a file
        _follow(PRETRAINED_KEY, PRETRAINED_BASIS, (model, allow), default_pretrained_choice(model, allow))
    choice = c2.selectbox("Pretrained weights", list(PRETRAINED_CHOICES), key=PRETRAINED_KEY,
                          format_func=PRETRAINED_CHOICES.get,
                          help="timm's pretrained weights for this model, found in the Hugging Face cache "
                               "(HF_HUB_CACHE / HF_HOME), a weights file of your own, or none.")
    allow = c3.toggle("Allow downloads", key=DOWNLOAD_KEY, disabled=forbidden,
                      help="HF_HUB_OFFLINE=1 is set in the studio's environment: nothing is downloaded."
                      if forbidden else "Let the training job download hub weights missing from the cache.")
    weights = ""
    if choice == "file":
        weights = st.text_input("Weights file", key=WEIGHTS_KEY, placeholder="/path/to/model.safetensors",
                                help="A local .safetensors / .pth file saved from this architecture.")
    pretrained, allow = pretrained_value(choice, weights), bool(allow) and not forbidden
    status = describe_pretrained(model, pretrained or "none", allow)
    if pretrained:
        weights_status(status)
    else:
        st.info("Type the path of a weights file saved from this architecture.", icon=":material/info:")
    return model, pretrained, allow, status


def weights_status(status) -> None:
    """The weights' availability and the input the model wants, drawn from a PretrainedStatus."""
    c, h, w = status.input_size
    mean = ", ".join(f"{m:.3f}" for m in status.mean)
    std = ", ".join(f"{s:.3f}" for s in status.std)
    text = (f"**Weights: {status.availability}.** {status.message}\n\nPretrained input: {h}x{w} px, {c} channels, "
            f"mean ({mean}), std ({std}), {status.interpolation} resize"
            + (" — this model only takes that size." if status.fixed_input_size else "."))
    draw = {"missing": st.error, "would download": st.warning, "none": st.info}.get(status.availability, st.success)
    draw(text, icon=AVAILABILITY_ICONS[status.availability])


def run_config_ui(dataset: Dataset, workspace: Path, devices: list[str]) -> dict[str, Any] | None:
    """Draw the form; on "Launch" return the config dict (with a ``vary`` mapping for a study), else None."""
    from engine.training.defaults import default_k

    model, pretrained, allow_download, status = weights_ui(dataset)
    size = default_size(dataset, model, pretrained if status.usable else "none")
    _follow(SIZE_KEY, SIZE_BASIS, (model, status.uses_weights, str(dataset.spec_path)), size.size)
    k_default = default_k(dataset.manifest, classes=dataset.classes)
    _follow(K_KEY, K_BASIS, str(dataset.spec_path or dataset.root), k_default.k)
    with st.form("train_form", border=True):
        c1, c2 = st.columns([1, 4], vertical_alignment="bottom")
        image_size = c1.number_input("Image size", 8, 1024, step=8, key=SIZE_KEY,
                                     help="Side of the square images the model sees.")
        c2.caption(f"Image size default {size.size}: {size.rule}.")

        st.markdown("**Folds**")
        if k_default.reason:
            st.warning(f"Folds default to {k_default.reason}", icon=":material/warning:")
        c1, c2, c3 = st.columns(3)
        k = c1.number_input("Folds (k)", 2, 20, key=K_KEY)
        holdout = c2.slider("Holdout share", 0.0, 0.4, 0.1, 0.05, key="train_holdout",
                            help="Kept out of every fold and predicted by every fold model: it measures what voting "
                                 "across folds gains.")
        groups = ["(none)"] + list(dataset.metadata_columns)
        group = c3.selectbox("Group column", groups, key="train_group",
                             help="Images of one group (e.g. one patient) never straddle folds.")

        st.markdown("**Training**")
        c1, c2, c3, c4, c5 = st.columns(5)
        epochs = c1.number_input("Epochs", 1, 500, 3, key="train_epochs")
        batch = c2.number_input("Batch size", 1, 4096, 64, key="train_batch")
        optimizer = c3.selectbox("Optimizer", ["adamw", "adam", "sgd", "rmsprop"], key="train_opt")
        lr = c4.number_input("Learning rate", 1e-6, 10.0, 3e-3, format="%.5f", key="train_lr")
        weight_decay = c5.number_input("Weight decay", 0.0, 1.0, 0.05, format="%.4f", key="train_wd")
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
        trial = trial_pipeline()  # a search trial's pipeline, after "Use best" (studio/widgets/search.py)
        aug_options = (([trial[0]] if trial else []) + ([LAB_PIPELINE] if lab.is_file() else [])
                       + [f"preset: {p}" for p in PRESET_NAMES])
        augment = c1.selectbox("Augmentation pipeline", aug_options, key="train_aug",
                               index=0 if lab.is_file() or trial else aug_options.index("preset: light"),
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
    if not launched:
        return None
    return build_config(dataset, workspace, model=model, pretrained=pretrained, allow_download=allow_download,
                        image_size=image_size, k=k, holdout=holdout, group=None if group == "(none)" else group,
                        epochs=epochs, batch=batch, optimizer=optimizer, lr=lr, scheduler=scheduler, loss=loss,
                        smoothing=smoothing, workers=workers, augment=augment, views=views, device=device, name=name,
                        data_cache=data_cache, compile_model=compile_model, auto_batch=auto_batch,
                        weight_decay=weight_decay, extra_pipelines=dict([trial]) if trial else None)


def build_config(dataset: Dataset, workspace: Path, *, model: str, pretrained: str, image_size: int, k: int,
                 holdout: float, group: str | None, epochs: int, batch: int, optimizer: str, lr: float,
                 scheduler: str, loss: str, smoothing: str, workers: int, augment: str, views: list[str],
                 device: str, name: str, allow_download: bool = False, data_cache: bool = True,
                 compile_model: bool = False, auto_batch: bool = False, weight_decay: float = 0.05,
                 extra_pipelines: dict[str, dict] | None = None) -> dict[str, Any]:
    """The config dict of the form's choices (pure: testable without Streamlit). ``extra_pipelines``: pipelines
    offered besides the presets and the lab's (label -> serialized dict), e.g. a search trial's."""
    from engine.augment import load_pipeline_file
    from engine.augment.presets import preset

    smoothing_values = parse_values(smoothing, field="label smoothing")
    if not pretrained.strip():
        raise ConfigError("The 'Weights file' field is empty: type the path of a local weights file, or choose "
                          "timm's pretrained weights or none under 'Pretrained weights'.")
    if extra_pipelines and augment in extra_pipelines:
        augment_dict = extra_pipelines[augment]
    elif augment == LAB_PIPELINE:
        augment_dict = load_pipeline_file(lab_pipeline_path(workspace))
    else:
        augment_dict = preset(augment.removeprefix("preset: "), int(image_size))
    config: dict[str, Any] = {
        "name": name.strip() or None,
        "dataset": str(dataset.spec_path or dataset.root),
        "model": {"name": model, "pretrained": pretrained.strip(), "allow_download": bool(allow_download)},
        "image_size": int(image_size),
        "split": {"k": int(k), "holdout_fraction": float(holdout), "group_column": group},
        "train": {"epochs": int(epochs), "batch_size": int(batch), "optimizer": optimizer, "lr": float(lr),
                  "weight_decay": float(weight_decay), "scheduler": scheduler, "loss": loss,
                  "label_smoothing": smoothing_values[0],
                  "num_workers": int(workers), "data_cache": bool(data_cache), "compile": bool(compile_model),
                  "auto_batch_size": bool(auto_batch)},
        "augment": augment_dict,
        "tta_views": list(views),
        "device": device,
    }
    if len(smoothing_values) > 1:
        config["vary"] = {"train.label_smoothing": smoothing_values}
    return config


# ---------------------------------------------------------------- filled from a search trial ("Use best")


def trial_pipeline() -> tuple[str, dict] | None:
    """(option label, pipeline dict) of the search trial whose config filled the form, when it is not a preset."""
    from studio import state

    entry = st.session_state.get(state.TRAIN_TRIAL_PIPELINE)
    return (str(entry[0]), entry[1]) if entry else None


def form_state_from_config(config: dict[str, Any], *, label: str) -> tuple[dict[str, Any], tuple[str, dict] | None]:
    """The form's session-state values for a resolved run config (a search trial's), and the pipeline option the
    augmentation picker must offer when the trial's pipeline is not a preset (``label`` names it). Pure."""
    from engine.augment.presets import preset_name_of

    train, split, model = config.get("train") or {}, config.get("split") or {}, config.get("model") or {}
    name = preset_name_of(config.get("augment"), config.get("image_size"))
    pipeline = None if name or config.get("augment") is None else (label, config["augment"])
    pretrained = str(model.get("pretrained") or "none")
    values = {
        MODEL_KEY: model.get("name"), PRETRAINED_KEY: pretrained if pretrained in ("none", "hub") else "file",
        WEIGHTS_KEY: "" if pretrained in ("none", "hub") else pretrained,
        DOWNLOAD_KEY: bool(model.get("allow_download", False)),
        SIZE_KEY: int(config.get("image_size") or 224), K_KEY: int(split.get("k", 3)),
        "train_holdout": float(split.get("holdout_fraction", 0.1)),
        "train_group": split.get("group_column") or "(none)",
        "train_epochs": int(train.get("epochs", 3)), "train_batch": int(train.get("batch_size", 64)),
        "train_opt": train.get("optimizer", "adamw"), "train_lr": min(max(float(train.get("lr", 3e-3)), 1e-6), 10.0),
        "train_wd": min(float(train.get("weight_decay", 0.05)), 1.0), "train_sched": train.get("scheduler", "cosine"),
        "train_loss": train.get("loss", "cross_entropy"), "train_ls": f"{float(train.get('label_smoothing', 0.0)):g}",
        "train_workers": int(train.get("num_workers", 2)),
        "train_aug": pipeline[0] if pipeline else f"preset: {name or 'light'}",
        "train_tta": list(config.get("tta_views") or DEFAULT_TTA_VIEWS), "train_name": label,
    }
    return values, pipeline


def pin_defaults(values: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    """The *_basis keys that keep ``values``' model weights, image size and k from being replaced by the
    defaults that follow the model and the dataset (see :func:`_follow`) when the form is drawn next."""
    from engine.offline import user_forbids_downloads
    from engine.training.pretrained import describe_pretrained

    model = values[MODEL_KEY]
    allow = bool(values[DOWNLOAD_KEY]) and not user_forbids_downloads()
    pretrained = pretrained_value(values[PRETRAINED_KEY], values[WEIGHTS_KEY])
    uses_weights = describe_pretrained(model, pretrained or "none", allow).uses_weights
    return {PRETRAINED_BASIS: (model, allow), SIZE_BASIS: (model, uses_weights, str(dataset.spec_path)),
            K_BASIS: str(dataset.spec_path or dataset.root)}
