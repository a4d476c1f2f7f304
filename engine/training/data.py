"""The input pipeline: decoded uint8 images -> albumentations -> uint8 CHW tensors -> device batches.

Work is split where it is cheapest:

- DataLoader workers decode (through an *image source*), augment with albumentations and make sure
  of the final size; they return uint8 (C, H, W) tensors, a quarter of the bytes of float32;
- on the device, in batches: the uint8 -> float conversion, the normalization with the model's mean
  and std, the channels_last layout and the TTA views (tensor ops, :mod:`engine.augment.tta`).

An image source is anything with ``__len__`` and ``__getitem__(i) -> np.ndarray (H, W, 3) uint8``:
:class:`FileImageSource` decodes files with :func:`engine.data.load_rgb`; runs read through
:meth:`RunContext.open_images <engine.training.context.RunContext.open_images>` instead: the
decoded-image cache (:mod:`engine.data.decoded_cache`), or the same pixels decoded at every read.

Randomness: albumentations 2.x keeps its own RNGs inside every transform. A forked DataLoader worker
inherits them as they were in the parent, so without reseeding every worker (and every epoch)
repeats the same augmentations. :class:`AugmentedImages` reseeds its pipeline from
``SeedSequence([seed, epoch, worker_id])`` whenever it sees a new epoch — the epoch number lives in
shared memory, so persistent workers (started once per loader) see :meth:`AugmentedImages.set_epoch`
too — giving each transform its own stream
(``Compose.set_random_seed`` would hand every transform the *same* seed, so e.g. two flips with
p=0.5 would always fire together).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from engine.data.images import load_rgb
from engine.errors import DatasetError

log = logging.getLogger(__name__)

SUBSTITUTE_TRIES = 16  # training: other images tried in place of an unreadable one before giving up
MAX_UNREADABLE_SHARE = 0.5  # above this share of unreadable images a fold stops: the folder is likely gone


class FileImageSource:
    """Images decoded from files on every access: ``source[i] -> (H, W, 3) uint8``."""

    def __init__(self, paths: Sequence[str]):
        self.paths = [str(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return load_rgb(self.paths[index])


# ---------------------------------------------------------------- albumentations randomness


def iter_transforms(transform) -> list:
    """The transform and every transform nested in it (Compose, OneOf, ...), depth first."""
    nodes = [transform]
    for child in getattr(transform, "transforms", None) or []:
        nodes.extend(iter_transforms(child))
    return nodes


def reseed_pipeline(pipeline, seed: int | Sequence[int]) -> None:
    """Give every transform of ``pipeline`` its own RNG streams, derived from ``seed``."""
    nodes = iter_transforms(pipeline)
    states = np.random.SeedSequence(seed).generate_state(len(nodes), dtype=np.uint32)
    for node, state in zip(nodes, states, strict=True):
        node.seed = int(state)
        node.random_generator = np.random.default_rng(int(state))
        node.py_random = random.Random(int(state))


def ends_with_normalize(pipeline) -> bool:
    import albumentations as A

    transforms = getattr(pipeline, "transforms", None) or []
    return bool(transforms) and isinstance(transforms[-1], A.Normalize)


def prediction_pipeline(train_pipeline):
    """What prediction applies of a training pipeline: its final ``A.Normalize`` (as a Compose) when it
    normalizes itself, else None (resize only; :class:`DeviceInput` normalizes with the model's mean/std)."""
    import albumentations as A

    return A.Compose([train_pipeline.transforms[-1]]) if ends_with_normalize(train_pipeline) else None


# ---------------------------------------------------------------- dataset


def fit_size(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (square) or ``(height, width)`` when needed: area interpolation to shrink,
    bilinear to enlarge."""
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrink = h * w > height * width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_chw(image: np.ndarray, size: int | tuple[int, int], pipeline=None) -> torch.Tensor:
    """One (H, W, 3) uint8 image -> ``pipeline`` (if any) -> :func:`fit_size` -> a (3, h, w) tensor:
    uint8, or float32 when the pipeline ended with ``A.Normalize``. Training, prediction and Grad-CAM
    all prepare an image with this function."""
    if pipeline is not None:
        image = pipeline(image=image)["image"]
    image = fit_size(np.ascontiguousarray(image), size)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class AugmentedImages(Dataset):
    """``dataset[i] -> (image, label)``: image (3, S, S) uint8 tensor (float32 when the pipeline ends
    with ``A.Normalize``), label int (-1 when unknown).

    ``pipeline`` is an albumentations transform or None (resize only: validation and prediction).
    Call :meth:`set_epoch` before each epoch; workers reseed in :func:`worker_init`.

    An image that cannot be decoded (:class:`DatasetError` from the source: a file truncated or
    removed after the scan) does not stop the loader. It is flagged in shared memory, so the main
    process sees what the workers met (:meth:`unreadable_paths`), logged once, and replaced:
    ``on_unreadable="substitute"`` (training) yields another image of the set with its label
    instead; ``"blank"`` (validation, prediction: one row per sample is needed) yields a black
    image, whose logits :func:`blank_unreadable` then sets to zero (a uniform "no opinion").
    """

    def __init__(self, source, labels: Sequence[int] | None, image_size: int, *, pipeline=None, seed: int = 0,
                 on_unreadable: Literal["substitute", "blank"] = "blank"):
        if on_unreadable not in ("substitute", "blank"):
            raise ValueError(f"on_unreadable must be 'substitute' or 'blank', got {on_unreadable!r}")
        self.on_unreadable = on_unreadable
        self._unreadable = torch.zeros(len(source), dtype=torch.bool).share_memory_()
        self.source = source
        self.labels = np.full(len(source), -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(source):
            raise ValueError(f"{len(self.labels)} labels for {len(source)} images")
        self.image_size = int(image_size)
        self.pipeline = pipeline
        self.seed = int(seed)
        # Shared memory: persistent DataLoader workers read the epoch the main process sets.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._worker_id = 0
        self.reseed(worker_id=0)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws for this epoch, in this process and in every worker (at its next item)."""
        self._epoch[0] = int(epoch)
        self.reseed(worker_id=self._worker_id)

    def reseed(self, worker_id: int) -> None:
        self._worker_id = worker_id
        self._seeded_epoch = self.epoch
        if self.pipeline is not None:
            reseed_pipeline(self.pipeline, [self.seed, self._seeded_epoch, worker_id])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._seeded_epoch != self.epoch:  # a persistent worker meeting a new epoch
            self.reseed(self._worker_id)
        try:
            image = self.source[index]
        except DatasetError as e:
            self._flag_unreadable(index, e)
            if self.on_unreadable == "substitute":
                index, image = self._substitute(index, e)
            else:
                image = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        return to_chw(image, self.image_size, self.pipeline), int(self.labels[index])

    def _flag_unreadable(self, index: int, error: Exception) -> None:
        if not bool(self._unreadable[index]):
            self._unreadable[index] = True
            log.warning("Skipping an unreadable image (the fold goes on): %s", error)

    def _substitute(self, index: int, error: Exception) -> tuple[int, np.ndarray]:
        """(index, image) of another image of the set in place of ``index``: the next readable one, wrapping around."""
        n = len(self)
        for step in range(1, min(SUBSTITUTE_TRIES, n - 1) + 1):
            other = (index + step) % n
            if bool(self._unreadable[other]):
                continue
            try:
                return other, self.source[other]
            except DatasetError as e:
                self._flag_unreadable(other, e)
        raise DatasetError(f"Image {self._path(index)!r} and the {min(SUBSTITUTE_TRIES, n - 1)} image(s) after it "
                           f"cannot be read ({error}); is the dataset folder still there?") from error

    def _path(self, index: int) -> str:
        paths = getattr(self.source, "paths", None)
        return str(paths[index]) if paths is not None else f"image #{index}"

    def unreadable_indices(self) -> np.ndarray:
        """Indices of the images that could not be read so far, in this process or any loader worker."""
        return np.flatnonzero(self._unreadable.numpy())

    def unreadable_paths(self) -> list[str]:
        """Paths (as the source names them) of the images that could not be read so far."""
        return [self._path(i) for i in self.unreadable_indices()]


def blank_unreadable(logits_by_view: dict[str, np.ndarray], dataset: AugmentedImages) -> dict[str, np.ndarray]:
    """Zero the logits (every view) of the rows whose image could not be read: uniform, not a guess from black."""
    bad = dataset.unreadable_indices()
    if len(bad):
        for logits in logits_by_view.values():
            logits[bad] = 0.0
    return logits_by_view


def record_unreadable(run_dir: str | os.PathLike, fold: int, *datasets: AugmentedImages) -> None:
    """Add the images these datasets skipped to the fold's ``skipped_images`` (status.json) and log them.

    Raises :class:`DatasetError` when more than :data:`MAX_UNREADABLE_SHARE` of a dataset's images
    (and more than one) could not be read: then the dataset folder is gone, not one file.
    """
    from engine.runs import store

    for data in datasets:
        bad = data.unreadable_paths()
        if len(bad) > 1 and len(bad) > MAX_UNREADABLE_SHARE * len(data):
            raise DatasetError(f"{len(bad)} of {len(data)} images of fold {fold} cannot be read (e.g. {bad[0]!r}); "
                               "is the dataset folder still there? Fix it, then resume the run.")
    paths = list(dict.fromkeys(p for data in datasets for p in data.unreadable_paths()))
    if not paths:
        return
    fold_status = (store.read_status(run_dir).get("folds") or {}).get(str(int(fold))) or {}
    known = list(fold_status.get("skipped_images") or [])
    new = [p for p in paths if p not in known]
    if new:
        log.warning("fold %d: skipped %d image(s) that could not be read: %s", fold, len(new), ", ".join(new[:20])
                    + (f" and {len(new) - 20} more" if len(new) > 20 else ""))
        store.update_fold_status(run_dir, fold, skipped_images=known + new)


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed the worker's copy of the pipeline for (epoch, worker)."""
    info = get_worker_info()
    dataset = info.dataset if info is not None else None
    if isinstance(dataset, AugmentedImages):
        dataset.reseed(worker_id + 1)  # worker ids start after the main process's 0


def make_loader(dataset: AugmentedImages, *, batch_size: int, shuffle: bool, num_workers: int, device: torch.device,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader over uint8 images; pinned memory on CUDA; persistent workers (started once, not at
    every epoch; :meth:`AugmentedImages.set_epoch` reaches them through shared memory). Shuffling draws
    from a generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      pin_memory=device.type == "cuda", drop_last=drop_last, generator=generator,
                      worker_init_fn=worker_init, persistent_workers=num_workers > 0,
                      prefetch_factor=4 if num_workers > 0 else None)


# ---------------------------------------------------------------- on the device


class DeviceInput:
    """Turn a loader batch into model input on the device: float, normalized, channels_last on CUDA."""

    def __init__(self, data_config: dict[str, Any], device: torch.device, *, channels_last: bool | None = None):
        self.device = device
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        shape = (1, -1, 1, 1)
        # mean/std folded into one multiply-add on 0..255 values: (x/255 - m)/s = x * (1/(255 s)) - m/s
        std = torch.tensor(data_config["std"], dtype=torch.float32)
        mean = torch.tensor(data_config["mean"], dtype=torch.float32)
        self.scale = (1.0 / (255.0 * std)).view(shape).to(device)
        self.shift = (-mean / std).view(shape).to(device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = torch.addcmul(self.shift, x.float(), self.scale)
        else:
            x = x.float()  # the pipeline normalized already (it ends with A.Normalize)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


# ---------------------------------------------------------------- prediction input, for images from outside a loader


@dataclass(frozen=True)
class PredictionInput:
    """How prediction turns decoded RGB images into model input; Grad-CAM uses it to see what prediction saw.

    ``size`` (height, width) of the model input; ``mean`` / ``std`` as in timm's data config;
    ``pipeline`` the run's :func:`prediction_pipeline` (None: resize only); ``stored_size`` the shorter side
    the run's image source first shrinks every image to (:mod:`engine.data.decoded_cache`), None when
    the images come already prepared. :meth:`batch` = shrink like the image source -> :func:`to_chw`
    -> :class:`DeviceInput`: the steps a prediction loader and ``RunContext.to_input`` take.
    (A JPEG read by the image source is decoded at a reduced DCT scale first, so its pixels may
    differ by a grey level or so from a full decode shrunk here.)
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pipeline: Any = None
    stored_size: int | None = None

    @classmethod
    def from_data_config(cls, data_config: dict[str, Any], *, pipeline=None,
                         stored_size: int | None = None) -> PredictionInput:
        """From timm's data config (``input_size`` (C, H, W), ``mean``, ``std``)."""
        _, height, width = (int(v) for v in data_config["input_size"])
        return cls(size=(height, width), mean=tuple(float(m) for m in data_config["mean"]),
                   std=tuple(float(s) for s in data_config["std"]), pipeline=pipeline, stored_size=stored_size)

    @property
    def data_config(self) -> dict[str, Any]:
        return {"input_size": (3, *self.size), "mean": self.mean, "std": self.std}

    def batch(self, images: Sequence[np.ndarray], device: torch.device | str = "cpu", *,
              channels_last: bool = False) -> torch.Tensor:
        """RGB uint8 images (H, W, 3), any sizes -> the float32 model input (N, 3, height, width) on ``device``."""
        from engine.data.decoded_cache import resize_for_cache

        items = []
        for image in images:
            image = np.asarray(image)
            if self.stored_size is not None:
                image = resize_for_cache(image, self.stored_size)
            items.append(to_chw(image, self.size, self.pipeline))
        return DeviceInput(self.data_config, torch.device(device), channels_last=channels_last)(torch.stack(items))


def run_prediction_input(cfg, data_config: dict[str, Any]) -> PredictionInput:
    """The :class:`PredictionInput` of a run: its config's (``RunConfig``) augmentation pipeline and the
    model's data config (``engine.training.models.resolve_data_config``)."""
    from engine.augment.pipeline import pipeline_from_dict
    from engine.data.decoded_cache import stored_size_for

    pipeline = prediction_pipeline(pipeline_from_dict(cfg.augment, source="'augment' field of the run config"))
    return PredictionInput.from_data_config(data_config, pipeline=pipeline,
                                            stored_size=stored_size_for(int(data_config["input_size"][-1])))
