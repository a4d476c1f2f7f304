"""Models: timm factories with local pretrained weights only, and the input each model wants.

No network, ever: pretrained weights come from a file the user names (timm's
``pretrained_cfg_overlay=dict(file=...)``); without one the model trains from scratch.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import torch

from engine.errors import ConfigError
from engine.training.config import ModelConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


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
            "(e.g. 'resnet18') and the weights file in 'model.pretrained_file' (nothing is downloaded)."
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
    """``timm.create_model`` with ``num_classes``; pretrained weights only from ``model_cfg.pretrained_file``."""
    import timm

    check_model_name(model_cfg.name)
    kwargs = _model_kwargs(model_cfg, num_classes)
    if model_cfg.pretrained_file is None:
        return timm.create_model(model_cfg.name, pretrained=False, **kwargs)
    path = _weights_file(model_cfg.pretrained_file)
    try:
        return timm.create_model(model_cfg.name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except (RuntimeError, KeyError, ValueError) as e:
        raise ConfigError(
            f"The weights file {str(path)!r} ('model.pretrained_file') does not fit model {model_cfg.name!r}: {e}"
        ) from None


def _weights_file(pretrained_file: str) -> Path:
    path = Path(pretrained_file).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"The 'model.pretrained_file' parameter names {str(path)!r}, which does not exist. Give the path of a "
            f"local weights file ({', '.join(WEIGHT_SUFFIXES)}) or null to train from scratch."
        )
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors or torch file (``weights_only``), unwrapping 'state_dict'/'model' keys."""
    from timm.models import load_state_dict

    try:
        return load_state_dict(str(path), use_ema=False, weights_only=True)
    except Exception as e:  # safetensors / pickle raise many types for a bad file
        raise ConfigError(f"The weights file {str(path)!r} cannot be read as a state_dict ({type(e).__name__}: {e}).") from None


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


def check_model_config(model_cfg: ModelConfig, *, num_classes: int) -> None:
    """Everything about the model that can be refused before a run is created: name, weights file, fit."""
    import timm

    check_model_name(model_cfg.name)
    try:
        model = timm.create_model(model_cfg.name, pretrained=False, **_model_kwargs(model_cfg, num_classes))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"timm cannot build model {model_cfg.name!r} with these settings: {e}") from None
    if model_cfg.pretrained_file is not None:
        path = _weights_file(model_cfg.pretrained_file)
        check_weights_fit(model, read_state_dict(path), source=f"{str(path)!r} ('model.pretrained_file')")


def resolve_data_config(model: torch.nn.Module, image_size: int | None = None) -> dict[str, Any]:
    """The input the model wants: ``input_size`` (C, H, W), ``mean``, ``std``, ``interpolation``.

    From timm's pretrained config; ``image_size`` (square) overrides the size.
    """
    from timm.data import resolve_data_config as timm_resolve

    cfg = timm_resolve(model=model)
    channels = cfg["input_size"][0]
    size = (image_size, image_size) if image_size else tuple(cfg["input_size"][1:])
    return {
        "input_size": (channels, *size),
        "mean": tuple(float(m) for m in cfg["mean"]),
        "std": tuple(float(s) for s in cfg["std"]),
        "interpolation": cfg.get("interpolation", "bilinear"),
    }


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
    model = create_model(cfg.model.model_copy(update={"pretrained_file": None}), len(cfg.classes or []))
    model.load_state_dict(load_file(str(path)))
    model.to(device).eval()
    info = {"config": cfg, "classes": list(cfg.classes or []), "data_config": resolve_data_config(model, cfg.image_size),
            "fold": fold}
    return model, info
