"""The run configuration: typed, validated, saved with the run as YAML.

A config file is YAML with the fields of :class:`RunConfig`. It may add a top-level ``vary:``
mapping of dotted field names to lists of values; the cartesian product of those lists gives
sibling runs that share one split (a *study*)::

    dataset: ../workspace/datasets/digits-demo/dataset.yaml   # relative to this file
    model: {name: resnet18}
    train: {epochs: 10, lr: 0.001}
    vary:
      train.label_smoothing: [0.0, 0.1]

Every error is a :class:`ConfigError` naming the field, what arrived and what is allowed.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from engine.augment.tta import validate_tta_views
from engine.errors import ConfigError
from engine.validation import StrictModel as _Strict
from engine.validation import validate_model

CONFIG_VERSION = 1


PRETRAINED_NONE, PRETRAINED_HUB = "none", "hub"


class WeightsSource(_Strict):
    """Which weights a run started from: filled when the run is created (by the job after a download)."""

    kind: Literal["none", "file", "hub", "url"] = Field(
        ..., description="none: from scratch; file: a local file; hub: the Hugging Face hub (cache); url: timm's URL.")
    path: str | None = Field(None, description="The weights file loaded (None until a permitted download happened).")
    sha256: str | None = Field(None, description="SHA-256 of that file.")
    hf_hub_id: str | None = Field(None, description="Hub repository (timm's pretrained config 'hf_hub_id').")
    revision: str | None = Field(None, description="Hub commit (snapshot folder) the file came from.")
    filename: str | None = Field(None, description="File name inside the hub repository.")
    url: str | None = Field(None, description="timm's download URL (models without a hub id).")


class ModelConfig(_Strict):
    name: str = Field("resnet18", description="Any timm model name (timm.list_models()), optionally with a tag.")
    pretrained: str = Field(
        PRETRAINED_NONE, description="none: train from scratch; hub: the weights timm.create_model(name, "
                                     "pretrained=True) loads, from the Hugging Face cache; or the path of a local "
                                     "weights file (.safetensors, .pth, .bin).")
    allow_download: bool = Field(
        False, description="hub weights missing from the cache may be downloaded (never when the user's "
                           "environment sets HF_HUB_OFFLINE=1).")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the classifier.")
    drop_path_rate: float | None = Field(None, ge=0.0, lt=1.0, description="Stochastic depth (models that have it).")
    weights_source: WeightsSource | None = Field(
        None, description="Filled when the run is created: which weights were used (kind, path, sha256, hub id).")

    @model_validator(mode="before")
    @classmethod
    def _migrate_pretrained_file(cls, data: Any) -> Any:
        """Older configs named a local weights file 'pretrained_file'; it is read as 'pretrained' (same format_version)."""
        if not isinstance(data, Mapping) or "pretrained_file" not in data:
            return data
        data = dict(data)
        old = data.pop("pretrained_file")
        if old is not None and str(old).strip():
            new = data.get("pretrained")
            if new is not None and str(new).strip().lower() not in (PRETRAINED_NONE, str(old).strip().lower()):
                raise ConfigError(f"The 'model.pretrained_file' parameter ({old!r}) is the old name of "
                                  f"'model.pretrained', which says {new!r}: give only 'model.pretrained'.")
            data["pretrained"] = old
        return data

    @field_validator("pretrained", mode="before")
    @classmethod
    def _pretrained(cls, value: Any) -> str:
        return check_pretrained(value)


def check_pretrained(value: Any) -> str:
    """'none' | 'hub' | a file path, from what a user may write (null / false: none; true: hub)."""
    if value is None or value is False:
        return PRETRAINED_NONE
    if value is True:
        return PRETRAINED_HUB
    if not isinstance(value, str):
        raise ConfigError(f"The 'model.pretrained' parameter must be 'none', 'hub' or the path of a weights file. "
                          f"Got {value!r} instead.")
    text = value.strip()
    if not text or text.lower() == PRETRAINED_NONE:
        return PRETRAINED_NONE
    return PRETRAINED_HUB if text.lower() == PRETRAINED_HUB else text


class SplitConfig(_Strict):
    k: int = Field(5, ge=2, description="Number of folds.")
    seed: int = Field(42, description="Seed of the holdout draw and of the fold assignment.")
    group_column: str | None = Field(
        None, description="Manifest column whose groups never straddle folds (default: the dataset's group column)."
    )
    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of samples kept out of every fold.")


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "adam", "sgd", "rmsprop"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.05, ge=0.0)
    scheduler: Literal["cosine", "step", "none"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, description="Linear warmup epochs before the cosine decay.")
    step_epochs: int = Field(10, ge=1, description="Step scheduler: epochs between decays.")
    step_gamma: float = Field(0.1, gt=0.0, le=1.0, description="Step scheduler: decay factor.")
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"
    focal_gamma: float = Field(2.0, ge=0.0)
    class_weights: Literal["none", "balanced"] = "none"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(None, gt=0.0, description="Max gradient norm; None: no clipping.")
    mixed_precision: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU, which trains in fp32).")
    early_stopping_patience: int | None = Field(None, ge=1, description="Epochs without improvement; None: off.")
    monitor: Literal["val_loss", "val_accuracy", "val_macro_f1"] = "val_loss"
    num_workers: int = Field(2, ge=0)
    data_cache: bool = Field(
        True, description="Decode and shrink each image once into the workspace's decoded-image cache, shared by "
                          "every fold and run; off: decode at every read (the same pixels, more CPU).")
    cache_max_gb: float | None = Field(
        None, gt=0.0, description="Largest decoded-image cache allowed (GB); above it, images are decoded at every "
                                  "read. None: the free disk space.")
    compile: bool = Field(False, description="torch.compile the model (static shapes); pays off on long GPU runs.")
    auto_batch_size: bool = Field(
        False, description="On CUDA, halve 'batch_size' until a training step fits in the device's memory.")
    deterministic: bool = Field(False, description="torch.use_deterministic_algorithms (slower on GPU).")


class RunConfig(_Strict):
    format_version: int = CONFIG_VERSION
    name: str | None = None
    dataset: str = Field(..., description="Path of the dataset spec YAML.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    image_size: int | None = Field(None, ge=8, description="Square input size; None: the model's default.")
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: dict[str, Any] | None = Field(
        None, description="albumentations serialized dict (A.to_dict), or in a config file the path of one; "
                          "None: the 'light' preset."
    )
    tta_views: list[str] = Field(default_factory=lambda: ["identity", "hflip"])
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    seed: int = 0
    launcher: Literal["local", "ray"] | None = Field(
        None, description="Backend that trains the run; None: the workspace's default (engine.jobs.launch_settings).")
    ray_address: str | None = Field(None, description="Ray cluster for launcher 'ray' (auto or HEAD_IP:6379).")
    classes: list[str] | None = Field(None, description="Filled when the run is created: the class order of logits.")
    excluded: list[dict[str, str]] = Field(
        default_factory=list, description="Filled when the run is created: training images left out because the "
                                          "scan could not read them (sample_id, path, reason).")
    label_overrides: dict[str, Any] | None = Field(
        None, description="Filled when the run is created: the dataset's label overrides it trains with "
                          "(engine.data.overrides; None: the labels as the dataset's files give them).")

    @field_validator("tta_views")
    @classmethod
    def _views(cls, views: list[str]) -> list[str]:
        return validate_tta_views(views)

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        return check_device_name(device)


def check_device_name(device: str, *, field: str = "device") -> str:
    d = str(device).strip().lower()
    if d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit()):
        return d
    raise ConfigError(f"The {field!r} parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.")


# ---------------------------------------------------------------- validation


def parse_run_config(data: Mapping[str, Any], *, source: str = "run config") -> RunConfig:
    """Validate one config mapping; :class:`ConfigError` lists every bad field (:mod:`engine.validation`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"The {source} must be a mapping of fields, got {type(data).__name__}.")
    return validate_model(RunConfig, data, error=ConfigError, what=f"The {source}")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The typed config of a run: its stored config (read by the run store, :func:`engine.runs.read_config`)
    validated into a :class:`RunConfig`."""
    from engine.runs import read_config

    return parse_run_config(read_config(run_dir), source=f"config of run {Path(run_dir).name!r}")


# ---------------------------------------------------------------- loading, vary, overrides


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"Cannot set {dotted!r}: {part!r} is not a section (it holds {child!r}).")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=0.01"`` -> ``("train.lr", 0.01)``; the value is parsed as YAML."""
    key, sep, raw = str(text).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"An override must look like 'dotted.key=value' (e.g. train.epochs=3). Got {text!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"The value of override {text!r} is not valid YAML: {e}") from None
    return key.strip(), value


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Config file {str(path)!r} cannot be read: {e}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {str(path)!r} must be a YAML mapping, got {type(data).__name__}.")
    return data


def _vary_combinations(vary: Any) -> list[dict[str, Any]]:
    if vary is None:
        return [{}]
    if not isinstance(vary, Mapping) or not vary:
        raise ConfigError("The 'vary' section must map dotted field names to lists of values, "
                          "e.g. {'train.label_smoothing': [0.0, 0.1]}.")
    keys = list(vary)
    for key in keys:
        if not isinstance(vary[key], list) or not vary[key]:
            raise ConfigError(f"The 'vary' entry {key!r} must be a non-empty list of values. Got {vary[key]!r}.")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(vary[k] for k in keys))]


def _resolve_paths(data: dict, base: Path | None) -> None:
    """A relative ``dataset`` path is taken from ``base``; an ``augment`` given as a path is read into its dict."""
    def resolve(text: str) -> Path:
        path = Path(text).expanduser()
        return (base / path).resolve() if base is not None and not path.is_absolute() else path

    if isinstance(data.get("dataset"), str):
        data["dataset"] = str(resolve(data["dataset"]))
    if isinstance(data.get("augment"), str):
        data["augment"] = _augment_from_text(data["augment"], data, resolve)


# ---------------------------------------------------------------- augmentation preset names (vary: {augment: [...]})


def _augment_from_text(text: str, data: dict, resolve: Callable[[str], Path]) -> dict[str, Any]:
    """A preset name (``light``, ...) -> that preset at the config's image size; any other text is a pipeline file."""
    from engine.augment.presets import PRESET_NAMES, preset

    if text.strip() in PRESET_NAMES:
        return preset(text.strip(), config_image_size(data))
    from engine.augment.pipeline import load_pipeline_file

    path = resolve(text)
    if not path.exists():
        raise ConfigError(f"The 'augment' parameter must be a preset name among {list(PRESET_NAMES)}, the path of a "
                          f"saved pipeline (YAML / JSON) or a pipeline dict. Got {text!r}, which is neither a preset "
                          f"nor an existing file ({str(path)!r}).")
    return load_pipeline_file(path)


def config_image_size(data: Mapping[str, Any]) -> int:
    """The square input size a config mapping trains at: its ``image_size``, else its model's default (as
    :func:`engine.training.create.create_runs` resolves it)."""
    size = data.get("image_size")
    if size is not None:
        return size
    from engine.training.models import model_data_config

    model = parse_run_config({"dataset": "", "model": data.get("model") or {}}, source="run config").model
    return int(model_data_config(model)["input_size"][-1])


def _augment_labels(configs: Sequence[RunConfig], specs: list[Any]) -> list[Any]:
    """Each varied ``augment`` dict shown as its preset name when it is one (run names, study files)."""
    from engine.augment.presets import preset_name_of

    labels = []
    for cfg, spec in zip(configs, specs, strict=True):
        size = cfg.image_size or config_image_size(cfg.model_dump())
        labels.append(preset_name_of(spec, size) or spec)
    return labels


def load_run_configs(path_or_dict: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> list[RunConfig]:
    """Read a config (a YAML path or a mapping) into one :class:`RunConfig` per ``vary`` combination.

    Overrides (``"dotted.key=value"``) apply to every combination before validation; an override of a
    varied field replaces the varied list (``--set 'vary.train.lr=[0.1, 0.01]'`` is not supported,
    set ``vary`` in the file instead). A relative ``dataset`` path is resolved against the config
    file's folder (against the current folder for a mapping). ``augment`` may be the path of a saved
    pipeline (YAML / JSON, e.g. the Augmentation lab's ``workspace/augment/current.yaml``); it is read
    into the dict, so the run keeps the pipeline itself.
    """
    if isinstance(path_or_dict, Mapping):
        data, base, source = copy.deepcopy(dict(path_or_dict)), None, "run config"
    else:
        path = Path(path_or_dict)
        data, base, source = _read_yaml(path), path.resolve().parent, f"config file {str(path)!r}"
    vary = data.pop("vary", None)
    if data.pop("search", None) is not None:  # a search config trains as its base run (engine.search reads the rest)
        logging.getLogger(__name__).info("%s: the 'search' section is left out (python -m engine search runs it)",
                                         source)
    parsed_overrides = [parse_override(o) for o in overrides]
    configs = []
    for combo in _vary_combinations(vary):
        item = copy.deepcopy(data)
        for key, value in [*combo.items(), *parsed_overrides]:
            _set_dotted(item, key, value)
        _resolve_paths(item, base)
        configs.append(parse_run_config(item, source=source))
    return configs


def varied_fields(configs: Sequence[RunConfig]) -> dict[str, list[Any]]:
    """Dotted field -> value per config, for every leaf field whose value differs between the configs."""
    flat = [_flatten(c.model_dump(mode="json", exclude={"name"})) for c in configs]
    keys = sorted({k for f in flat for k in f})
    varied = {k: [f.get(k) for f in flat] for k in keys if len({yaml.safe_dump(f.get(k)) for f in flat}) > 1}
    if "augment" in varied:
        varied["augment"] = _augment_labels(configs, varied["augment"])
    return varied


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key != "augment":
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# ---------------------------------------------------------------- checks against the dataset


def validate_against_dataset(cfg: RunConfig, dataset) -> None:
    """Everything that can be refused before a run directory is written (:class:`ConfigError`).

    Checks: k vs the smallest class (and vs the classes left after the holdout), a holdout that would
    empty a class, the group column, the timm model name, the pretrained weights file, the
    augmentation dict.
    """
    from engine.training.models import check_model_config
    from engine.training.splits import check_split_feasible

    check_split_feasible(dataset.manifest, cfg.split, classes=dataset.classes)
    check_model_config(cfg.model, num_classes=len(dataset.classes))
    _check_augment(cfg)


def _check_augment(cfg: RunConfig) -> None:
    if cfg.augment is None:
        return
    from engine.augment.pipeline import pipeline_from_dict

    pipeline_from_dict(cfg.augment, source="'augment' field (augmentation pipeline)")
