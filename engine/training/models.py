"""Models: timm factories, pretrained weights the timm way, and the input each model wants.

Pretrained weights (``model.pretrained``: none | hub | a local file) are resolved by
:mod:`engine.training.pretrained`; nothing is downloaded unless the run allows it
(:mod:`engine.offline`). The weights are handed to timm as its ``pretrained_cfg`` state_dict
source, so timm's own adaptation applies: a new classifier for another class count, the input
convolution adapted to the channels, the model's checkpoint filter.
"""

from __future__ import annotations

import difflib
import pickle
from pathlib import Path
from typing import Any

import torch

from engine.errors import ConfigError
from engine.training.config import PRETRAINED_NONE, ModelConfig, WeightsSource
from engine.training.pretrained import WEIGHT_SUFFIXES, timm_pretrained_cfg, weights_to_load

__all__ = ["WEIGHT_SUFFIXES", "check_model_config", "check_model_name", "create_model", "list_models",
           "load_fold_model", "model_data_config", "read_state_dict", "resolve_data_config"]


def list_models(pattern: str = "*") -> list[str]:
    """timm model names matching a wildcard pattern (feeds the studio's model picker)."""
    import timm

    return timm.list_models(pattern)


def check_model_name(name: str) -> None:
    """Refuse an unknown timm model, suggesting close names."""
    import timm

    if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ConfigError(
            f"The 'model.name' parameter {name!r} points at a hub or folder; give a timm architecture name "
            "(e.g. 'resnet18', or 'resnet18.a1_in1k' for one of its pretrained tags) and 'model.pretrained: hub' "
            "for timm's weights, or the weights file in 'model.pretrained'."
        )
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Close names: {close}." if close else " See timm.list_models() (python -c 'import timm; print(timm.list_models())')."
    raise ConfigError(f"The 'model.name' parameter must be a timm model name. Got {name!r}, which timm does not know.{hint}")


def _model_kwargs(model_cfg: ModelConfig, num_classes: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": model_cfg.drop_rate}
    if model_cfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = model_cfg.drop_path_rate
    return kwargs


def create_model(model_cfg: ModelConfig, num_classes: int) -> torch.nn.Module:
    """``timm.create_model`` with ``num_classes``, starting from the weights ``model.pretrained`` names.

    The file recorded in ``model.weights_source`` when the run was created is used (and checked
    against its SHA-256); without one, ``model.pretrained`` is resolved now
    (:func:`engine.training.pretrained.weights_to_load`).
    """
    check_model_name(model_cfg.name)
    kwargs = _model_kwargs(model_cfg, num_classes)
    path, _ = weights_to_load(model_cfg)
    if path is None:
        return _build(model_cfg.name, kwargs)
    return _build(model_cfg.name, kwargs, state_dict=read_state_dict(path), source=str(path))


def _build(name: str, kwargs: dict[str, Any], *, state_dict: dict[str, torch.Tensor] | None = None,
           source: str = "") -> torch.nn.Module:
    import timm

    try:
        if state_dict is None:
            return timm.create_model(name, pretrained=False, **kwargs)
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"state_dict": state_dict}, **kwargs)
    except TypeError as e:
        raise ConfigError(f"timm cannot build model {name!r} with these settings: {e}") from None
    except (RuntimeError, KeyError, ValueError) as e:
        if state_dict is None:
            raise ConfigError(f"timm cannot build model {name!r} with these settings: {e}") from None
        raise ConfigError(_misfit_message(name, kwargs, state_dict, source, e)) from None
    model.pretrained_cfg["state_dict"] = None  # timm keeps its source config: do not hold a second copy of the weights
    return model


def _misfit_message(name: str, kwargs: dict[str, Any], state_dict: dict, source: str, error: Exception) -> str:
    import timm

    try:
        check_weights_fit(timm.create_model(name, pretrained=False, **kwargs), state_dict, source=repr(source))
    except ConfigError as e:
        return str(e)
    return f"The weights file {source!r} does not fit model {name!r}: {error}"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors or torch file (``weights_only``), unwrapping 'state_dict'/'model' keys
    (and, as timm does, preferring an EMA copy). :class:`ConfigError` names the file and what is wrong with it."""
    from safetensors import SafetensorError
    from timm.models import load_state_dict

    where = f"The weights file {str(path)!r}"
    if not Path(path).is_file():
        raise ConfigError(f"{where} does not exist.")
    if Path(path).stat().st_size == 0:
        raise ConfigError(f"{where} is empty.")
    try:
        state = load_state_dict(str(path), use_ema=True, weights_only=True)
    except SafetensorError as e:
        raise ConfigError(f"{where} is not a valid safetensors file ({e}).") from None
    except EOFError:
        raise ConfigError(f"{where} ends too early: it is truncated (copy it again).") from None
    except (RuntimeError, pickle.UnpicklingError) as e:
        raise ConfigError(
            f"{where} cannot be read as a state_dict by torch.load(weights_only=True), which loads tensors only: "
            f"{e} Save the weights with torch.save(model.state_dict(), path) or safetensors."
        ) from None
    except AttributeError:  # timm's clean_state_dict calls .items(): the file holds a tensor, a list, ...
        raise ConfigError(f"{where} cannot be read as a state_dict: it holds no mapping of parameter names to "
                          "tensors (torch.save(model.state_dict(), path) writes one).") from None
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)][:3]
    if bad:
        raise ConfigError(f"{where} cannot be read as a state_dict: entries {bad} are not tensors.")
    return state


def _classifier_keys(model: torch.nn.Module) -> set[str]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def check_weights_fit(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *, source: str) -> None:
    """Refuse a state_dict whose backbone keys or shapes differ from the model's (the classifier may differ)."""
    own = model.state_dict()
    head = _classifier_keys(model)
    missing = [k for k in own if k not in state_dict and k not in head]
    unexpected = [k for k in state_dict if k not in own and k not in head]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state_dict and k not in head and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing key(s) (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(wrong)} shape mismatch(es) (e.g. {wrong[:3]})" if wrong else ""]
        raise ConfigError(
            f"The weights file {source} does not fit model {getattr(model, 'default_cfg', {}).get('architecture', '?')!r}: "
            + "; ".join(p for p in parts if p) + ". Use weights saved from the same architecture."
        )


def check_model_config(model_cfg: ModelConfig, *, num_classes: int) -> WeightsSource:
    """Everything about the model that can be refused before a run is created: name, settings, weights.

    Builds the model once, from the weights it will train from (timm loads them as training will);
    returns the ``model.weights_source`` to record. Hub weights still to be downloaded are not checked.
    """
    from engine.training.pretrained import resolve_weights

    check_model_name(model_cfg.name)
    source = resolve_weights(model_cfg)
    if source.kind != "none" and source.path is None:  # to be downloaded by the job: check the settings only
        create_model(model_cfg.model_copy(update={"pretrained": PRETRAINED_NONE}), num_classes)
    else:
        create_model(model_cfg.model_copy(update={"weights_source": source}), num_classes)
    return source


def _data_config(cfg: dict[str, Any], image_size: int | None) -> dict[str, Any]:
    """Our shape of timm's resolved data config, ``image_size`` (square) overriding the size."""
    channels = cfg["input_size"][0]
    size = (image_size, image_size) if image_size else tuple(cfg["input_size"][1:])
    return {
        "input_size": (channels, *size),
        "mean": tuple(float(m) for m in cfg["mean"]),
        "std": tuple(float(s) for s in cfg["std"]),
        "interpolation": cfg.get("interpolation", "bilinear"),
    }


def model_data_config(model: ModelConfig | str, image_size: int | None = None) -> dict[str, Any]:
    """The input a model wants, from timm's pretrained config alone (the model is not built).

    ``input_size`` (C, H, W), ``mean``, ``std``, ``interpolation``; ``image_size`` (square) overrides
    the size. The same answer as ``timm.data.resolve_data_config(model=timm.create_model(name))``.
    """
    from timm.data import resolve_data_config as timm_resolve
    from timm.models import PretrainedCfg

    name = model if isinstance(model, str) else model.name
    check_model_name(name)
    cfg = timm_pretrained_cfg(name) or PretrainedCfg()  # timm's default for a model without one
    return _data_config(timm_resolve(pretrained_cfg=cfg.to_dict()), image_size)


def resolve_data_config(model: torch.nn.Module, image_size: int | None = None) -> dict[str, Any]:
    """The input a built model wants (its ``pretrained_cfg``); see :func:`model_data_config`."""
    from timm.data import resolve_data_config as timm_resolve

    return _data_config(timm_resolve(model=model), image_size)


def load_fold_model(run_dir: str | Path, fold: int, *, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The best model of one fold, in eval mode on ``device``, and its info.

    Info: ``config`` (RunConfig), ``classes``, ``data_config`` (input_size, mean, std), ``fold``.
    """
    from safetensors.torch import load_file

    from engine.errors import RunError
    from engine.runs import weights_path
    from engine.training.config import read_run_config

    cfg = read_run_config(run_dir)
    path = weights_path(run_dir, fold)
    if not path.is_file():
        raise RunError(f"Fold {fold} of run {Path(run_dir).name!r} has no weights yet ({str(path)!r}); train it first.")
    model = create_model(cfg.model.model_copy(update={"pretrained": PRETRAINED_NONE}), len(cfg.classes or []))
    model.load_state_dict(load_file(str(path)))
    model.to(device).eval()
    info = {"config": cfg, "classes": list(cfg.classes or []), "data_config": model_data_config(cfg.model, cfg.image_size),
            "fold": fold}
    return model, info
