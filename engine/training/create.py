"""Creating runs: validate configs against their dataset, make the one split they share, resolve each
config, and write a queued run directory per config (and the study file) through the run store.

Nothing is written unless every config passes. The store (:mod:`engine.runs`) only writes the files;
what a run is made of — the checks, the split, the resolved config — is decided here, next to the
code that trains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.runs import store
from engine.training.config import RunConfig, validate_against_dataset, varied_fields


def _run_name(cfg, varied: dict[str, list[Any]], index: int) -> str:
    """The config's name (default: the model's), followed by this run's value of each varied field."""
    parts = [cfg.name or cfg.model.name]
    for key, values in varied.items():
        value = values[index]
        if key == "model.name":
            parts += [] if not cfg.name else [str(value)]
        elif not isinstance(value, (dict, list)):
            parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return " ".join(parts)


def _resolve_config(cfg, dataset):
    """The config as stored: dataset path absolute; classes, image size, augmentation, weights used filled in."""
    from engine.augment.presets import preset
    from engine.training.models import model_data_config
    from engine.training.pretrained import resolve_weights

    image_size = cfg.image_size or int(model_data_config(cfg.model)["input_size"][-1])
    augment = cfg.augment if cfg.augment is not None else preset("light", image_size)
    spec_path = dataset.spec_path or Path(cfg.dataset)
    model = cfg.model.model_copy(update={"weights_source": resolve_weights(cfg.model)})
    return cfg.model_copy(update={"dataset": str(Path(spec_path).absolute()), "classes": list(dataset.classes),
                                  "image_size": image_size, "augment": augment, "model": model,
                                  "excluded": list(dataset.excluded),
                                  "label_overrides": dataset.overrides.record() if dataset.overrides else None})


def _check_one_split(configs) -> None:
    first = configs[0]
    for cfg in configs[1:]:
        if cfg.dataset != first.dataset or cfg.split != first.split:
            field = "dataset" if cfg.dataset != first.dataset else "split"
            raise ConfigError(f"Runs launched together share one split, so '{field}' cannot vary between them "
                              f"(got {getattr(first, field)!r} and {getattr(cfg, field)!r}). Launch them separately.")


def _open_dataset(path: str):
    from engine.data import open_dataset
    from engine.errors import DatasetError

    try:
        return open_dataset(path, write_detected_spec=False)
    except DatasetError as e:
        hint = " (for the demo dataset, run `python -m engine demo` first)" if "digits-demo" in str(path) else ""
        raise ConfigError(f"The 'dataset' parameter: {e}{hint}") from None


def create_runs(configs: Sequence[RunConfig], workspace: str | Path | None = None) -> list[Path]:
    """Validate every config, compute one shared split, and write a queued run directory per config.

    All or nothing: nothing is written unless every config passes, and the runs appear together once
    all are written (each is staged under a hidden name, then renamed into place); a write that fails
    removes the ones already written. With more than one config the runs form a study, recorded in
    ``workspace/studies/<study_id>.yaml`` (members and varied fields) after the runs are in place.
    """
    from engine.data.exclusions import drop_unreadable_images
    from engine.training.splits import make_split

    configs = list(configs)
    if not configs:
        raise ConfigError("create_runs needs at least one run config.")
    _check_one_split(configs)
    dataset = drop_unreadable_images(_open_dataset(configs[0].dataset), workspace=workspace)
    for cfg in configs:
        validate_against_dataset(cfg, dataset)
    resolved = [_resolve_config(cfg, dataset) for cfg in configs]
    split = make_split(dataset.manifest, configs[0].split)
    varied = varied_fields(configs) if len(configs) > 1 else {}
    study_id = store.new_study_id() if len(configs) > 1 else None
    subsets = ["oof"] + (["holdout"] if split["is_holdout"].any() else []) + (["test"] if len(dataset.test_manifest) else [])
    staged: list[Path] = []
    published: list[Path] = []
    try:
        for i, cfg in enumerate(resolved):
            cfg = cfg.model_copy(update={"name": _run_name(cfg, varied, i)})
            staged.append(store.stage_run_dir(workspace, name=cfg.name, config=cfg.model_dump(mode="json"),
                                              split=split, study_id=study_id, subsets=subsets, folds=cfg.split.k,
                                              epochs=cfg.train.epochs))
        # Every run is written before any is shown: a launch interrupted half-way (an error, the studio
        # killed) leaves no part of a study behind, only hidden staging folders that a later launch removes.
        for path in staged:
            published.append(store.publish_run_dir(path))
        if study_id:
            store.write_study(workspace, study_id, [p.name for p in published], varied)
    except BaseException:
        store.discard_run_dirs(staged + published)
        raise
    return published
