"""K-fold training: run configs, splits, timm models, the input pipeline, the loop, predictions.

Public names: :func:`load_run_configs`, :class:`RunConfig` (and its sections), :func:`read_run_config`,
:func:`create_runs` (validate, split, write the run directories through the run store), :func:`make_split`,
:func:`create_model`, :func:`model_data_config`, :func:`describe_pretrained`, :func:`train_run`,
:func:`train_folds`, :func:`predict_run`, :class:`Cancelled`. Heavy modules (torch, timm) load on first use of a
name that needs them, so ``import engine.training`` stays cheap.
"""

from __future__ import annotations

import importlib

from engine.training.config import (
    ModelConfig,
    RunConfig,
    SplitConfig,
    TrainConfig,
    load_run_configs,
    read_run_config,
    validate_against_dataset,
)

_LAZY = {
    "create_runs": "engine.training.create",
    "make_split": "engine.training.splits",
    "create_model": "engine.training.models",
    "list_models": "engine.training.models",
    "load_fold_model": "engine.training.models",
    "resolve_data_config": "engine.training.models",
    "model_data_config": "engine.training.models",
    "describe_pretrained": "engine.training.pretrained",
    "train_run": "engine.training.fit",
    "train_folds": "engine.training.fit",
    "Cancelled": "engine.training.fit",
    "predict_run": "engine.training.predict",
}

__all__ = ["ModelConfig", "RunConfig", "SplitConfig", "TrainConfig", "load_run_configs", "read_run_config",
           "validate_against_dataset", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.training' has no attribute {name!r}")
