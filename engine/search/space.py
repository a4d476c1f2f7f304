"""From a search's parameter specs to an Optuna trial's values, and from those values to a run config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError
from engine.search.config import STRENGTH_PARAM, ParamSpec, SearchConfig, param_kind


def suggest(trial, params: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Ask ``trial`` (an ``optuna.Trial``) for a value of every parameter; returns ``{dotted key: value}``.

    Choices -> ``suggest_categorical``; integer fields -> ``suggest_int``; the rest ``suggest_float``
    (``log`` and ``step`` as given).
    """
    values: dict[str, Any] = {}
    for key, spec in params.items():
        if spec.is_choice:
            values[key] = trial.suggest_categorical(key, list(spec.choices))
        elif param_kind(key) is int:
            step = int(spec.step) if spec.step else 1
            values[key] = trial.suggest_int(key, int(spec.low), int(spec.high), step=step, log=spec.log)
        else:
            values[key] = trial.suggest_float(key, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
    return values


def augment_at_strength(strength: float, image_size: int) -> dict[str, Any]:
    """A pipeline whose every magnitude grows with ``strength`` in [0, 1] (albumentations' serialized dict).

    0 is a plain resize plus a horizontal flip; 1 crops down to 40% of the area, rotates up to 30
    degrees, shifts brightness / contrast by up to 40% and cuts out up to 8 holes. One knob, so a
    search (or a person) can ask how much augmentation the data wants.
    """
    import albumentations as A

    s = float(strength)
    if not 0.0 <= s <= 1.0:
        raise ConfigError(f"The '{STRENGTH_PARAM}' parameter must be within [0, 1]. Got {strength!r} instead.")
    size = int(image_size)
    transforms = [A.RandomResizedCrop(size=(size, size), scale=(1.0 - 0.6 * s, 1.0)), A.HorizontalFlip(p=0.5)]
    if s > 0:
        transforms += [
            A.Affine(scale=(1 - 0.2 * s, 1 + 0.2 * s), translate_percent=(-0.1 * s, 0.1 * s), rotate=(-30 * s, 30 * s),
                     p=0.3 + 0.5 * s),
            A.RandomBrightnessContrast(brightness_limit=(-0.4 * s, 0.4 * s), contrast_limit=(-0.4 * s, 0.4 * s),
                                       p=0.3 + 0.5 * s),
            A.CoarseDropout(num_holes_range=(1, max(1, round(8 * s))), hole_height_range=(0.05, 0.05 + 0.15 * s),
                            hole_width_range=(0.05, 0.05 + 0.15 * s), p=0.5 * s),
        ]
    return A.to_dict(A.Compose(transforms))


def trial_config(base: Mapping[str, Any], values: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """The run config mapping of one trial: ``base`` with each searched value set (dotted keys), ``name`` set.

    ``augment_strength`` is applied last, at the trial's image size (which may depend on a searched model).
    """
    from engine.training.config import _set_dotted, config_image_size

    data = copy.deepcopy(dict(base))
    for key, value in values.items():
        if key != STRENGTH_PARAM:
            _set_dotted(data, key, value)
    if STRENGTH_PARAM in values:
        data["augment"] = augment_at_strength(values[STRENGTH_PARAM], config_image_size(data))
    if name is not None:
        data["name"] = name
    return data


def check_space(base: Mapping[str, Any], search: SearchConfig, dataset=None) -> None:
    """Every end of every range and every choice makes a valid run config (:class:`ConfigError` names the field),
    and, with ``dataset``, one that dataset accepts (timm model names, pipelines, ...).

    Checks each parameter alone against the base, so a bad value is named by itself.
    """
    from engine.training.config import load_run_configs, validate_against_dataset

    for key, spec in search.params.items():
        probes = list(spec.choices) if spec.is_choice else [spec.low, spec.high]
        for value in probes:
            if not spec.is_choice and param_kind(key) is int:
                value = int(value)
            try:
                (cfg,) = load_run_configs(trial_config(base, {key: value}))
                if dataset is not None:
                    validate_against_dataset(cfg, dataset)
            except ConfigError as e:
                raise ConfigError(f"The search parameter {key!r} cannot take the value {value!r}: {e}") from None
