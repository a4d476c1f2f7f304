"""The ``search:`` section of a run config: what an Optuna search varies, what it optimizes, how long.

A search config is a run config (the base every trial starts from) plus a ``search:`` mapping::

    dataset: workspace/datasets/digits-demo/dataset.yaml
    model: {name: test_resnet}
    image_size: 32
    train: {epochs: 3}
    search:
      trials: 12
      metric: macro_f1          # macro_f1 | accuracy (maximized) | log_loss (minimized)
      evaluate_on: oof          # oof: every fold; fold0: only fold 0 is trained (cheaper)
      params:
        train.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
        train.weight_decay: {low: 0.0, high: 0.1}
        train.batch_size: [32, 64, 128]        # a list is a set of choices
        model.name: [test_resnet, test_efficientnet]
        augment: [light, medium]               # preset names or pipeline files
        augment_strength: {low: 0.0, high: 1.0}

Parameters are dotted fields of the run config (plus ``augment_strength``, see
:func:`engine.search.space.augment_at_strength`). Split fields and the dataset cannot be searched:
the trials of one search share one split. Every error is a :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.errors import ConfigError
from engine.validation import StrictModel, validate_model

STRENGTH_PARAM = "augment_strength"
METRIC_COLUMNS = {"macro_f1": "val_macro_f1", "accuracy": "val_accuracy", "log_loss": "val_loss"}
# Fields a search may not vary: they define the split (shared by every trial) or the run's identity.
_FIXED = ("dataset", "split", "classes", "format_version", "name", "device", "vary", "search")


class ParamSpec(StrictModel):
    """A range (``low`` / ``high``, optionally ``log`` or ``step``) or a list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[str | int | float | bool | None] | None = None

    @property
    def is_choice(self) -> bool:
        return self.choices is not None


class SearchConfig(StrictModel):
    name: str | None = Field(None, description="Shown in the studio and in trial run names (default: derived).")
    metric: Literal["macro_f1", "accuracy", "log_loss"] = "macro_f1"
    evaluate_on: Literal["oof", "fold0"] = Field(
        "oof", description="oof: the objective is scored on every fold's out-of-fold predictions; fold0: only fold 0 "
                           "is trained and its validation predictions are scored.")
    trials: int = Field(10, ge=1, description="Finished trials to reach (complete, pruned or failed).")
    timeout: float | None = Field(None, gt=0, description="Seconds after which no new trial starts.")
    pruner: Literal["median", "none"] = "median"
    pruner_startup_trials: int = Field(2, ge=0, description="Trials finished before the median pruner prunes.")
    pruner_warmup_epochs: int = Field(1, ge=0, description="Epochs of a trial never pruned.")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    max_failures: int = Field(3, ge=1, description="Consecutive failed trials after which the search gives up.")
    params: dict[str, ParamSpec]

    @property
    def direction(self) -> str:
        return "minimize" if self.metric == "log_loss" else "maximize"

    @property
    def epoch_column(self) -> str:
        """The metrics.csv column the pruner watches (the per-epoch validation metric)."""
        return METRIC_COLUMNS[self.metric]


# ---------------------------------------------------------------- parsing


class _SearchSection(StrictModel):
    """Wraps the section so that messages name its fields as ``search.<field>``."""

    search: SearchConfig


def parse_search_section(section: Any) -> SearchConfig:
    """Validate a ``search:`` mapping (a list as a parameter's value means choices)."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"The 'search' section must be a mapping (trials, metric, params, ...). "
                          f"Got {type(section).__name__} instead.")
    data = dict(section)
    params = data.get("params")
    if not isinstance(params, Mapping) or not params:
        raise ConfigError("The 'search.params' parameter must map at least one config field to a range or choices, "
                          "e.g. {'train.lr': {'low': 1e-4, 'high': 1e-1, 'log': True}}. "
                          f"Got {params!r} instead.")
    data["params"] = {str(k): ({"choices": v} if isinstance(v, list) else v) for k, v in params.items()}
    cfg = validate_model(_SearchSection, {"search": data}, error=ConfigError, what="The 'search' section").search
    for key, spec in cfg.params.items():
        check_param(key, spec)
    if "augment" in cfg.params and STRENGTH_PARAM in cfg.params:
        raise ConfigError(f"The search parameters 'augment' and '{STRENGTH_PARAM}' both choose the augmentation "
                          "pipeline; search one of them.")
    return cfg


def split_search_config(data: Mapping[str, Any]) -> tuple[dict[str, Any], SearchConfig]:
    """(the base run config mapping, its validated ``search`` section); refuses ``vary`` next to ``search``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"A search config must be a mapping of fields. Got {type(data).__name__} instead.")
    base = copy.deepcopy(dict(data))
    if "search" not in base:
        raise ConfigError("The config has no 'search' section: add one (search: {trials: 10, params: {train.lr: "
                          "{low: 1.0e-4, high: 1.0e-1, log: true}}}), see docs/formats.md.")
    section = base.pop("search")
    if base.get("vary") is not None:
        raise ConfigError("A search config cannot also have a 'vary' section: search the fields instead "
                          "(a list in search.params tries each value).")
    base.pop("vary", None)
    return base, parse_search_section(section)


# ---------------------------------------------------------------- parameters vs the run config


def _field_annotation(key: str) -> Any:
    """The annotation of dotted run-config field ``key``; ConfigError with close names when there is none."""
    from engine.training.config import RunConfig

    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            prefix = ".".join(parts[:i])
            names = [f"{prefix}.{n}" if prefix else n for n in model.model_fields]
            close = difflib.get_close_matches(key, [*_leaf_fields(), STRENGTH_PARAM], n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else f" Fields there: {names}."
            raise ConfigError(f"The search parameter {key!r} is not a field of the run config.{hint}")
        ann = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                raise ConfigError(f"The search parameter {key!r} is not a field of the run config: "
                                  f"{'.'.join(parts[: i + 1])!r} has no sub-fields.")
            model = ann
    return ann


def _leaf_fields() -> list[str]:
    from engine.training.config import RunConfig

    out = []
    for name, field in RunConfig.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += [f"{name}.{sub}" for sub in ann.model_fields]
        else:
            out.append(name)
    return out


def _numeric_kind(ann: Any) -> type | None:
    """int or float for a numeric field (Optional allowed), else None."""
    union = isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union
    args = typing.get_args(ann) if union else (ann,)
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) == 1 and kinds[0] in (int, float):
        return kinds[0]
    return None


def param_kind(key: str) -> type | None:
    """int / float for a numeric parameter (a range may be searched), None for choices only."""
    if key == STRENGTH_PARAM:
        return float
    if key == "augment":
        return None
    return _numeric_kind(_field_annotation(key))


def check_param(key: str, spec: ParamSpec) -> None:
    """Refuse a parameter the run config does not have, a split field, an empty range, empty choices."""
    root = key.split(".")[0]
    if root in _FIXED:
        why = ("the trials of one search share one split, so split fields and the dataset are fixed"
               if root in ("dataset", "split") else "it is not a hyperparameter")
        raise ConfigError(f"The search parameter {key!r} cannot be searched: {why}.")
    kind = param_kind(key)
    if spec.is_choice:
        if spec.low is not None or spec.high is not None:
            raise ConfigError(f"The search parameter {key!r} gives both 'choices' and a range; give one of them.")
        if not spec.choices:
            raise ConfigError(f"The search parameter {key!r} has an empty list of choices; give at least one value.")
        if len({repr(c) for c in spec.choices}) != len(spec.choices):
            raise ConfigError(f"The search parameter {key!r} repeats a choice: {spec.choices}.")
        return
    if kind is None:
        raise ConfigError(f"The search parameter {key!r} takes a list of choices (it is not a number). "
                          f"Got a range (low={spec.low!r}, high={spec.high!r}) instead.")
    if spec.low is None or spec.high is None:
        raise ConfigError(f"The search parameter {key!r} needs both 'low' and 'high' (or a list of choices). "
                          f"Got low={spec.low!r}, high={spec.high!r}.")
    if not spec.low < spec.high:
        raise ConfigError(f"The search range of {key!r} is empty: 'low' ({spec.low}) must be below 'high' "
                          f"({spec.high}).")
    if spec.log and spec.low <= 0:
        raise ConfigError(f"The search parameter {key!r} is log-uniform, so 'low' must be > 0. Got {spec.low}.")
    if spec.log and spec.step is not None:
        raise ConfigError(f"The search parameter {key!r} cannot have both 'log' and 'step'.")
    if kind is int and not (float(spec.low).is_integer() and float(spec.high).is_integer()):
        raise ConfigError(f"The search parameter {key!r} is an integer field: 'low' and 'high' must be integers. "
                          f"Got {spec.low} and {spec.high}.")
    if key == STRENGTH_PARAM and not (0.0 <= spec.low and spec.high <= 1.0):
        raise ConfigError(f"The search parameter {key!r} must stay within [0, 1]. Got [{spec.low}, {spec.high}].")


def absolute_paths(data: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``dataset`` (and an ``augment`` file, not a preset name) made absolute against the config file's folder."""
    from engine.augment.presets import PRESET_NAMES

    def resolve(text: str) -> str:
        path = Path(text).expanduser()
        return str((base_dir / path).resolve() if base_dir is not None and not path.is_absolute() else path.absolute())

    out = copy.deepcopy(data)
    if isinstance(out.get("dataset"), str):
        out["dataset"] = resolve(out["dataset"])
    if isinstance(out.get("augment"), str) and out["augment"].strip() not in PRESET_NAMES:
        out["augment"] = resolve(out["augment"])
    return out
