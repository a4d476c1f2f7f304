"""Train a run: every requested fold that is not complete, one after the other.

``train_folds`` composes small ``build_*`` steps. Per fold: train, validate every epoch (a row of
the run's metrics), keep the best weights by ``train.monitor``, stop early after ``patience`` epochs
without improvement, then write the best weights and predict OOF / holdout / test for every TTA
view. A complete fold (weights + every prediction file) is never touched again, so training again
resumes at the first unfinished fold. A fold interrupted mid-way starts over.

Who writes the status: ``train_folds`` writes the per-fold entries only (state, epoch, batch,
best metric) and the decoded-image cache report. The run-level state (running, then done / failed /
cancelled) belongs to whoever runs the session, through :func:`engine.runs.mark_running` and
:func:`engine.runs.mark_finished`: the job layer for a job (:mod:`engine.jobs.runner` calls
``train_folds``), :func:`train_run` for a script training in its own process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import engine.runs as store
from engine.training.context import RunContext, build_context, fold_seed
from engine.training.data import AugmentedImages, blank_unreadable, make_loader, record_unreadable
from engine.training.loop import (
    Cancelled,
    EpochResult,
    build_optimizer,
    classification_metrics,
    collect_logits,
    current_lr,
    is_better,
    train_one_epoch,
)
from engine.training.losses import build_loss
from engine.training.models import create_model
from engine.training.outcome import error_text
from engine.training.predict import predict_fold
from engine.training.tensorboard import FoldBoard, open_fold_board, write_run_summary

__all__ = ["Cancelled", "train_folds", "train_run"]

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]
STATUS_EVERY_S = 1.0  # batch progress reaches the run's status at most this often


@dataclass
class FoldState:
    """What one fold's training loop carries from epoch to epoch."""

    fold: int
    best_metric: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    step: int = 0
    last_status: float = field(default=0.0)
    board: FoldBoard | None = None  # TensorBoard event file of the fold (engine.training.tensorboard)


@dataclass
class FoldParts:
    model: torch.nn.Module
    train_images: AugmentedImages
    train_loader: Any
    val_loader: Any
    val_labels: np.ndarray
    loss_fn: torch.nn.Module
    optimizer: Any
    scheduler: Any


def _noop_progress(_: dict[str, Any]) -> None:
    return None


def _never() -> bool:
    return False


def train_run(run_dir: str | Path, *, folds: Iterable[int] | None = None, device: str | None = None,
              progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> None:
    """Train the requested folds (default: all) of a run that are not complete yet, in this process,
    and record the run's state: ``running``, then ``done`` once every fold of the run is complete
    (it stays ``running`` while folds are left), ``cancelled`` or ``failed`` (with the error).

    ``progress(dict)`` receives ``{run_id, fold, epoch, epochs, batch, batches, phase, ...}`` at
    every batch; ``should_stop()`` is asked at every batch boundary and a True answer raises
    :class:`Cancelled`. Errors propagate after being recorded. A background job does not call this:
    it calls :func:`train_folds` and records the outcome itself (:mod:`engine.jobs.runner`).
    """
    run_dir = Path(run_dir)
    ctx = build_context(run_dir, device)
    store.mark_running(run_dir, device=str(ctx.device))
    try:
        _train_folds(ctx, folds, progress or _noop_progress, should_stop or _never)
    except BaseException as exc:
        if isinstance(exc, (Cancelled, KeyboardInterrupt)):
            store.mark_finished(run_dir, "cancelled")
        else:
            store.mark_finished(run_dir, "failed", error=error_text(exc, run_dir))
        raise
    if all(store.fold_is_complete(run_dir, f) for f in range(ctx.cfg.split.k)):
        store.mark_finished(run_dir, "done", progress=1.0)


def train_folds(run_dir: str | Path, *, folds: Iterable[int] | None = None, device: str | None = None,
                progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> None:
    """Train the requested folds (default: all) that are not complete yet, writing per-fold state only
    (see the module docstring; arguments as :func:`train_run`)."""
    _train_folds(build_context(run_dir, device), folds, progress or _noop_progress, should_stop or _never)


def _train_folds(ctx: RunContext, folds: Iterable[int] | None, progress: Progress,
                 should_stop: Callable[[], bool]) -> None:
    todo = _folds_to_train(ctx, folds)
    if todo:
        open_run_images(ctx)
    for fold in todo:
        train_fold(ctx, fold, progress, should_stop)
    if todo and all(store.fold_is_complete(ctx.run_dir, f) for f in range(ctx.cfg.split.k)):
        # TensorBoard hparams with the final CV metrics (engine.training.tensorboard)
        write_run_summary(ctx.run_dir, ctx.cfg, study=store.read_status(ctx.run_dir).get("study_id"))


def _folds_to_train(ctx: RunContext, folds: Iterable[int] | None) -> list[int]:
    from engine.errors import ConfigError

    k = ctx.cfg.split.k
    wanted = list(range(k)) if folds is None else sorted({int(f) for f in folds})
    bad = [f for f in wanted if not 0 <= f < k]
    if bad:
        raise ConfigError(f"The 'folds' parameter must hold fold numbers among 0..{k - 1}. Got {bad} instead.")
    return [f for f in wanted if not store.fold_is_complete(ctx.run_dir, f)]


def open_run_images(ctx: RunContext) -> None:
    """Build or reuse the decoded-image cache before the first fold; the status's ``image_cache`` tells how it went."""
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= STATUS_EVERY_S or done == total:
            last = now
            store.update_status(ctx.run_dir, image_cache={"state": "building", "done": done, "total": total})

    images = ctx.open_images(progress=report)
    store.update_status(ctx.run_dir, image_cache={"state": "ready", **images.summary()})


def train_fold(ctx: RunContext, fold: int, progress: Progress, should_stop: Callable[[], bool]) -> None:
    """Train one fold from scratch, then write its best weights and predictions."""
    cfg = ctx.cfg
    store.drop_fold_metrics(ctx.run_dir, fold)
    store.update_fold_status(ctx.run_dir, fold, state="running", epoch=0, epochs=cfg.train.epochs, batch=0,
                             batches=0, best_metric=None, best_epoch=None, monitor=cfg.train.monitor, phase="train",
                             skipped_images=[], error=None)
    seed_everything(fold_seed(cfg, fold), deterministic=cfg.train.deterministic, device=ctx.device)
    parts = build_fold_parts(ctx, fold)
    state = FoldState(fold=fold, board=open_fold_board(ctx, fold))
    try:
        fit_epochs(ctx, parts, state, progress, should_stop)
        finish_fold(ctx, parts, state, progress, should_stop)
    except Cancelled:
        _mark_fold(ctx, fold, state="cancelled")
        raise
    except BaseException as e:
        _mark_fold(ctx, fold, state="failed", error=f"{type(e).__name__}: {e}")
        raise
    finally:
        state.board.close()


def _mark_fold(ctx: RunContext, fold: int, **fields: Any) -> None:
    """Record how a fold ended; when even status.json cannot be written (a full disk) the fold's own error wins."""
    try:
        store.update_fold_status(ctx.run_dir, fold, **fields)
    except OSError as e:
        log.error("fold %d: could not record %s in status.json (%s)", fold, fields, e)


def seed_everything(seed: int, *, deterministic: bool, device: torch.device) -> None:
    """Seed torch (CPU and CUDA); optionally ask for deterministic kernels."""
    torch.manual_seed(seed)
    if deterministic:  # cuBLAS needs a fixed workspace to be deterministic (read when CUDA starts)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def build_model(ctx: RunContext) -> torch.nn.Module:
    model = create_model(ctx.cfg.model, len(ctx.classes)).to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def build_fast_model(ctx: RunContext, loss_fn: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """The fold's model and batch size: searched on CUDA when ``train.auto_batch_size``, then compiled
    when ``train.compile`` (:mod:`engine.training.fastpath`)."""
    from engine.training.fastpath import compile_model, probe_batch_size

    model = build_model(ctx)
    if ctx.cfg.train.auto_batch_size and ctx.device.type == "cuda" and ctx.found_batch_size is None:
        ctx.found_batch_size = probe_batch_size(model, loss_fn, start=ctx.cfg.train.batch_size,
                                                image_size=ctx.image_size, num_classes=len(ctx.classes),
                                                autocast=ctx.autocast)
        log.info("automatic batch size: %d (asked for at most %d)", ctx.found_batch_size, ctx.cfg.train.batch_size)
    if ctx.cfg.train.compile:
        compile_model(model)
    return model, ctx.batch_size


def build_fold_parts(ctx: RunContext, fold: int) -> FoldParts:
    """Model, loaders, loss, optimizer and scheduler of one fold."""
    cfg, samples = ctx.cfg.train, ctx.samples
    train_table = samples[(samples["fold"] != fold) & ~samples["is_holdout"]].reset_index(drop=True)
    val_table = samples[samples["fold"] == fold].reset_index(drop=True)
    seed = fold_seed(ctx.cfg, fold)
    loss_fn = build_loss(cfg, train_table["label_index"].to_numpy(), len(ctx.classes)).to(ctx.device)
    model, batch_size = build_fast_model(ctx, loss_fn)
    train_images = ctx.images(train_table, train=True, seed=seed)
    # drop_last keeps BatchNorm away from a batch of one (and a compiled model on one batch shape);
    # only when there are several batches.
    train_loader = make_loader(train_images, batch_size=batch_size, shuffle=True, num_workers=cfg.num_workers,
                               device=ctx.device, seed=seed, drop_last=len(train_table) > batch_size)
    val_loader = make_loader(ctx.images(val_table, train=False), batch_size=batch_size * 2, shuffle=False,
                             num_workers=cfg.num_workers, device=ctx.device)
    optimizer, scheduler = build_optimizer(model, cfg, len(train_loader))
    return FoldParts(model, train_images, train_loader, val_loader, val_table["label_index"].to_numpy(),
                     loss_fn, optimizer, scheduler)


def fit_epochs(ctx: RunContext, parts: FoldParts, state: FoldState, progress: Progress,
               should_stop: Callable[[], bool]) -> None:
    """Train and validate epoch by epoch, keeping the best weights; stop early on patience."""
    cfg = ctx.cfg.train
    to_input = ctx.to_input()
    for epoch in range(1, cfg.epochs + 1):
        parts.train_images.set_epoch(epoch)
        on_batch = _batch_reporter(ctx, state, epoch, "train", progress, should_stop)
        result = train_one_epoch(parts.model, parts.train_loader, to_input, parts.loss_fn, parts.optimizer,
                                 scheduler=parts.scheduler, step=state.step, grad_clip=cfg.grad_clip,
                                 autocast=ctx.autocast, on_batch=on_batch)
        state.step += len(parts.train_loader)
        logits = collect_logits(parts.model, parts.val_loader, to_input, autocast=ctx.autocast,
                                on_batch=_batch_reporter(ctx, state, epoch, "validate", progress, should_stop))
        record_unreadable(ctx.run_dir, state.fold, parts.train_images, parts.val_loader.dataset)
        logits = blank_unreadable(logits, parts.val_loader.dataset)["identity"]
        metrics = classification_metrics(logits, parts.val_labels, len(ctx.classes))
        record_epoch(ctx, parts, state, epoch, result, metrics)
        progress({"run_id": ctx.run_dir.name, "fold": state.fold, "epoch": epoch, "epochs": cfg.epochs,
                  "phase": "epoch_end", "train_loss": result.loss, **metrics})
        patience = cfg.early_stopping_patience
        if patience is not None and epoch - state.best_epoch >= patience:
            log.info("fold %d: early stop at epoch %d (best %s at epoch %d)", state.fold, epoch, cfg.monitor,
                     state.best_epoch)
            break


def record_epoch(ctx: RunContext, parts: FoldParts, state: FoldState, epoch: int, result: EpochResult,
                 metrics: dict[str, float]) -> None:
    """Append the epoch's metrics row; keep the weights when the monitored metric improved."""
    monitor = ctx.cfg.train.monitor
    if is_better(metrics[monitor], state.best_metric, monitor) or state.best_state is None:
        state.best_metric, state.best_epoch = metrics[monitor], epoch
        state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in parts.model.state_dict().items()}
    row = {"fold": state.fold, "epoch": epoch, "train_loss": result.loss, **metrics, "lr": current_lr(parts.optimizer),
           "epoch_seconds": round(result.seconds, 4), "images_per_second": round(result.images_per_second, 2)}
    store.append_metrics(ctx.run_dir, row)
    if state.board is not None:
        state.board.log_epoch(row)
    store.update_fold_status(ctx.run_dir, state.fold, epoch=epoch, best_metric=state.best_metric,
                             best_epoch=state.best_epoch)


def finish_fold(ctx: RunContext, parts: FoldParts, state: FoldState, progress: Progress,
                should_stop: Callable[[], bool]) -> None:
    """Best weights -> weights file, then OOF / holdout / test predictions; the fold is done."""
    parts.model.load_state_dict(state.best_state)
    store.update_fold_status(ctx.run_dir, state.fold, phase="predict", batch=0)
    epochs = ctx.cfg.train.epochs

    def on_batch(subset: str, i: int, n: int) -> None:
        if should_stop():
            raise Cancelled(f"cancelled while predicting fold {state.fold}")
        progress({"run_id": ctx.run_dir.name, "fold": state.fold, "epoch": epochs, "epochs": epochs,
                  "batch": i, "batches": n, "phase": f"predict_{subset}"})

    predict_fold(ctx, parts.model, state.fold, ctx.cfg.tta_views, on_batch=on_batch)
    store.write_weights(ctx.run_dir, state.fold, state.best_state)
    store.update_fold_status(ctx.run_dir, state.fold, state="done", phase="done", finished_at=store.now_iso())


def _batch_reporter(ctx: RunContext, state: FoldState, epoch: int, phase: str, progress: Progress,
                    should_stop: Callable[[], bool]) -> Callable[..., None]:
    """The per-batch callback: cancel check, progress callback, the status at most every STATUS_EVERY_S."""
    epochs = ctx.cfg.train.epochs

    def on_batch(batch: int, batches: int, loss: float = float("nan")) -> None:
        if should_stop():
            raise Cancelled(f"cancelled at fold {state.fold}, epoch {epoch}, batch {batch}")
        progress({"run_id": ctx.run_dir.name, "fold": state.fold, "epoch": epoch, "epochs": epochs,
                  "batch": batch, "batches": batches, "phase": phase})
        now = time.monotonic()
        if phase == "train" and (now - state.last_status >= STATUS_EVERY_S or batch == batches):
            state.last_status = now
            store.update_fold_status(ctx.run_dir, state.fold, epoch=epoch, batch=batch, batches=batches, phase=phase)

    return on_batch
