"""One epoch of training, one pass of validation, and the optimizer / scheduler factories.

The loops know nothing about run directories: they take a model, a loader, a
:class:`~engine.training.data.DeviceInput` and callbacks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.analysis.metrics import score
from engine.training.config import TrainConfig


class Cancelled(Exception):
    """Training stopped at a batch boundary because ``should_stop()`` said so."""


def optimizer_kwargs(train_cfg: TrainConfig) -> dict[str, Any]:
    """Config -> ``timm.optim.create_optimizer_v2`` keyword arguments ('sgd' is SGD with Nesterov momentum)."""
    return {"opt": train_cfg.optimizer, "lr": train_cfg.lr, "weight_decay": train_cfg.weight_decay, "momentum": 0.9}


def scheduler_kwargs(train_cfg: TrainConfig, updates_per_epoch: int) -> dict[str, Any]:
    """Config -> ``timm.scheduler.create_scheduler_v2`` keyword arguments, stepping per optimizer update."""
    kwargs: dict[str, Any] = {"sched": train_cfg.scheduler, "num_epochs": train_cfg.epochs, "step_on_epochs": False,
                              "updates_per_epoch": max(updates_per_epoch, 1), "min_lr": 0.0}
    if train_cfg.scheduler == "cosine":
        # warmup first, then a full cosine over the remaining epochs down to min_lr
        kwargs.update(num_epochs=max(train_cfg.epochs - train_cfg.warmup_epochs, 1), warmup_epochs=train_cfg.warmup_epochs,
                      warmup_lr=train_cfg.lr * 0.01, warmup_prefix=True)
    elif train_cfg.scheduler == "step":
        kwargs.update(decay_epochs=train_cfg.step_epochs, decay_rate=train_cfg.step_gamma)
    return kwargs


def build_optimizer(model: nn.Module, train_cfg: TrainConfig, updates_per_epoch: int):
    """(optimizer, scheduler or None) for the config."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    optimizer = create_optimizer_v2(model, **optimizer_kwargs(train_cfg))
    if train_cfg.scheduler == "none":
        return optimizer, None
    scheduler, _ = create_scheduler_v2(optimizer, **scheduler_kwargs(train_cfg, updates_per_epoch))
    return optimizer, scheduler


def current_lr(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


@dataclass
class EpochResult:
    loss: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def train_one_epoch(model: nn.Module, loader, to_input: Callable, loss_fn: nn.Module, optimizer, *,
                    scheduler=None, step: int = 0, grad_clip: float | None = None, autocast=contextlib.nullcontext,
                    on_batch: Callable[[int, int, float], None] | None = None) -> EpochResult:
    """Train over ``loader`` once. ``on_batch(batch, batches, loss)`` runs before every batch
    (batch 0..batches-1) and once after the last (batch == batches); it may raise to stop."""
    model.train()
    device = next(model.parameters()).device
    total, images, batches = torch.zeros((), device=device), 0, len(loader)
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if on_batch is not None:
            on_batch(i, batches, float("nan"))
        x, y = to_input(x), y.to(device, non_blocking=True)
        with autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        step += 1
        if scheduler is not None:
            scheduler.step_update(num_updates=step)
        total += loss.detach() * len(y)  # stays on the device: no sync per batch
        images += len(y)
    mean_loss = float(total) / max(images, 1)
    if on_batch is not None:
        on_batch(batches, batches, mean_loss)
    return EpochResult(loss=mean_loss, images=images, seconds=time.perf_counter() - start)


@torch.inference_mode()
def collect_logits(model: nn.Module, loader, to_input: Callable, *, views=("identity",), autocast=contextlib.nullcontext,
                   on_batch: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Logits (N, C) float32 per TTA view, in loader order; the views are tensor ops on the device batch.

    A compiled model (static shapes) gets the last, smaller batch padded to the loader's batch size.
    """
    from engine.augment.tta import apply_view_torch
    from engine.training.fastpath import is_compiled, pad_batch

    model.eval()
    outputs: dict[str, list[torch.Tensor]] = {v: [] for v in views}
    batches = len(loader)
    pad_to = loader.batch_size if is_compiled(model) else None
    for i, (x, _) in enumerate(loader):
        if on_batch is not None:
            on_batch(i, batches)
        n = len(x)
        x = to_input(x)
        if pad_to:
            x = pad_batch(x, pad_to)
        for view in views:
            with autocast():
                logits = model(apply_view_torch(x, view))
            outputs[view].append(logits[:n].float())
    return {v: (torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), np.float32)) for v, out in outputs.items()}


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """val_loss (plain cross-entropy: no smoothing, no weights, so runs compare), val_accuracy, val_macro_f1.

    Accuracy and macro-F1 are :func:`engine.analysis.metrics.score`'s, so metrics.csv and the Folds page
    agree: macro-F1 averages over the classes present in the labels or the predictions (scikit-learn's
    ``f1_score(average="macro")``), not over all ``num_classes``.
    """
    labels = np.array(labels, dtype=np.int64)  # a copy: pandas hands out read-only arrays
    logits = np.array(logits, dtype=np.float32)
    scores = score(labels, y_pred=logits.argmax(axis=1))
    return {
        "val_loss": float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))),
        "val_accuracy": scores["accuracy"],
        "val_macro_f1": scores["macro_f1"],
    }


def is_better(value: float, best: float | None, monitor: str) -> bool:
    if best is None or not np.isfinite(best):
        return bool(np.isfinite(value))
    return value < best if monitor == "val_loss" else value > best
