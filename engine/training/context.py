"""What training and prediction of one run share: its config, tables, device and input settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.errors import ConfigError, RunError
from engine.training.config import RunConfig, check_device_name
from engine.training.data import AugmentedImages, DeviceInput, prediction_pipeline

# An image source factory: paths -> object with __len__ and __getitem__(i) -> (H, W, 3) uint8.
ImageSourceFactory = Callable[[Sequence[str]], Any]


def resolve_device(name: str | None) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; ``cuda:N`` must exist."""
    name = check_device_name(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"The 'device' parameter asks for {name!r}, but this machine has no CUDA device; "
                              "use 'auto' or 'cpu'.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"The 'device' parameter asks for {name!r}, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1}).")
    return torch.device(name)


@dataclass
class RunContext:
    """A run, loaded for training or prediction.

    ``samples``: the training manifest joined with the split (``sample_id``, ``path``,
    ``label_index``, ``fold``, ``is_holdout``), in manifest order; ``test``: ``sample_id``, ``path``.
    """

    run_dir: Path
    cfg: RunConfig
    classes: list[str]
    samples: pd.DataFrame
    test: pd.DataFrame
    device: torch.device
    data_config: dict[str, Any]
    image_source: ImageSourceFactory | None = None
    _train_pipeline: Any = field(default=None, repr=False)
    _images: Any = field(default=None, repr=False)  # every run image: decoded-image cache or decoding source
    _image_rows: dict[str, int] = field(default_factory=dict, repr=False)
    found_batch_size: int | None = None  # set by the automatic batch size (train.auto_batch_size)

    @property
    def image_size(self) -> int:
        return int(self.data_config["input_size"][-1])

    @property
    def batch_size(self) -> int:
        """The training batch size: the config's, or the one the automatic search found."""
        return self.found_batch_size or self.cfg.train.batch_size

    @property
    def stored_size(self) -> int:
        """Shorter side every image is first brought to, cached or not (224 -> 256)."""
        from engine.data.decoded_cache import stored_size_for

        return stored_size_for(self.image_size)

    @property
    def use_autocast(self) -> bool:
        return self.device.type == "cuda" and self.cfg.train.mixed_precision

    def to_input(self) -> DeviceInput:
        return DeviceInput(self.data_config, self.device)

    def autocast(self):
        if self.use_autocast:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    def train_pipeline(self):
        from engine.augment.pipeline import pipeline_from_dict

        if self._train_pipeline is None:
            self._train_pipeline = pipeline_from_dict(self.cfg.augment, source="'augment' field of the run config")
        return self._train_pipeline

    def eval_pipeline(self):
        """None (resize only), or the training pipeline's final ``A.Normalize`` when it normalizes itself."""
        return prediction_pipeline(self.train_pipeline())

    def open_images(self, progress: Callable[[int, int], None] | None = None):
        """Build or reuse the decoded-image cache of every training and test image, once per context.

        ``train.data_cache`` off, or a cache that would not fit: a source that decodes at every read,
        yielding the same pixels (:func:`engine.data.decoded_cache.open_image_source`).
        """
        if self._images is None:
            from engine.data.decoded_cache import open_image_source
            from engine.runs import workspace_of

            paths = list(dict.fromkeys([*self.samples["path"], *self.test["path"]]))
            train = self.cfg.train
            max_bytes = None if train.cache_max_gb is None else int(train.cache_max_gb * 1e9)
            self._images = open_image_source(paths, self.stored_size, cache=train.data_cache,
                                             workspace=workspace_of(self.run_dir),
                                             max_bytes=max_bytes, progress=progress)
            self._image_rows = {p: i for i, p in enumerate(self._images.paths)}
        return self._images

    def images(self, table: pd.DataFrame, *, train: bool, seed: int = 0) -> AugmentedImages:
        """A dataset over the rows of ``samples`` or ``test`` (augmented when ``train``)."""
        labels = table["label_index"].to_numpy() if "label_index" in table else None
        pipeline = self.train_pipeline() if train else self.eval_pipeline()
        paths = table["path"].tolist()
        if self.image_source is not None:
            source = self.image_source(paths)
        else:
            images = self.open_images()
            source = images.select([self._image_rows[os.path.abspath(p)] for p in paths])
        return AugmentedImages(source, labels, self.image_size, pipeline=pipeline, seed=seed,
                               on_unreadable="substitute" if train else "blank")


def build_context(run_dir: str | Path, device: str | None = None, *,
                  image_source: ImageSourceFactory | None = None) -> RunContext:
    """Load a run's config, dataset and split; pick the device (argument, else the config's)."""
    from engine.runs import read_split
    from engine.training.config import read_run_config
    from engine.training.pretrained import fetch_pending_weights

    run_dir = Path(run_dir)
    cfg = fetch_pending_weights(run_dir, read_run_config(run_dir))
    samples, test = _tables(cfg, read_split(run_dir))
    return RunContext(run_dir=run_dir, cfg=cfg, classes=list(cfg.classes or []), samples=samples, test=test,
                      device=resolve_device(device or cfg.device), data_config=_data_config(cfg),
                      image_source=image_source)


def _data_config(cfg: RunConfig) -> dict[str, Any]:
    from engine.training.models import model_data_config

    return model_data_config(cfg.model, cfg.image_size)


def _tables(cfg: RunConfig, split: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    from engine.data import open_dataset

    dataset = open_dataset(cfg.dataset, write_detected_spec=False, overrides=cfg.label_overrides)  # as created
    if cfg.classes and list(dataset.classes) != list(cfg.classes):
        raise RunError(f"The dataset {cfg.dataset!r} now has classes {dataset.classes}, but the run was created with "
                       f"{cfg.classes}; its predictions would not line up. Create a new run.")
    manifest = dataset.manifest[["sample_id", "path", "label_index"]].astype({"sample_id": str})
    samples = manifest.merge(split, on="sample_id", how="inner", validate="one_to_one")
    missing = len(split) - len(samples)
    if missing:
        lost = sorted(set(split["sample_id"]) - set(samples["sample_id"]))[:5]
        raise RunError(f"{missing} sample(s) of the run's split are no longer in the dataset (e.g. {lost}); "
                       "the split cannot be reproduced. Restore the files or create a new run.")
    test = dataset.test_manifest[["sample_id", "path"]].astype({"sample_id": str}).reset_index(drop=True)
    return samples.reset_index(drop=True), test


def fold_seed(cfg: RunConfig, fold: int) -> int:
    """One seed per (run seed, fold): model init, shuffling and augmentation of that fold."""
    return int(np.random.SeedSequence([cfg.seed, fold]).generate_state(1)[0])
