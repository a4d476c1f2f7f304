"""Predictions of fold models: out-of-fold, holdout and test logits for every TTA view, as Parquet.

Rows (docs/formats.md): ``sample_id`` (str), ``fold`` (int16), ``view`` (str), ``label_index``
(int64; -1 for test), ``logit_0 .. logit_{C-1}`` (float32), one per (sample, fold, view).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.augment.tta import validate_tta_views
from engine.errors import RunError
from engine.training.context import RunContext, build_context
from engine.training.data import blank_unreadable, make_loader, record_unreadable
from engine.training.loop import collect_logits


def prediction_frame(sample_ids: Sequence[str], label_index: np.ndarray, fold: int,
                     logits_by_view: dict[str, np.ndarray]) -> pd.DataFrame:
    """Stack per-view logits (N, C) into prediction rows, view by view."""
    frames = []
    for view, logits in logits_by_view.items():
        frame = pd.DataFrame({"sample_id": pd.Series(sample_ids, dtype=str).to_numpy(),
                              "fold": np.full(len(sample_ids), fold, dtype=np.int16),
                              "view": view,
                              "label_index": np.asarray(label_index, dtype=np.int64)})
        logit_cols = pd.DataFrame(logits.astype(np.float32), columns=[f"logit_{c}" for c in range(logits.shape[1])])
        frames.append(pd.concat([frame, logit_cols], axis=1))
    return pd.concat(frames, ignore_index=True)


def subset_tables(ctx: RunContext, fold: int) -> dict[str, pd.DataFrame]:
    """The rows each subset predicts for one fold: its validation fold, the holdout, the test images."""
    samples = ctx.samples
    tables = {"oof": samples[samples["fold"] == fold], "holdout": samples[samples["is_holdout"]]}
    if len(ctx.test):
        tables["test"] = ctx.test.assign(label_index=-1)
    return {k: v.reset_index(drop=True) for k, v in tables.items() if k == "oof" or len(v)}


def predict_fold(ctx: RunContext, model: torch.nn.Module, fold: int, views: Sequence[str], *,
                 batch_size: int | None = None, on_batch: Callable[[str, int, int], None] | None = None) -> None:
    """Write ``predictions/fold{fold}_{subset}.parquet`` for every subset, every view."""
    from engine.runs import write_predictions

    batch_size = batch_size or ctx.batch_size * 2
    to_input = ctx.to_input()
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    for subset, table in subset_tables(ctx, fold).items():
        loader = make_loader(ctx.images(table, train=False), batch_size=batch_size, shuffle=False,
                             num_workers=ctx.cfg.train.num_workers, device=ctx.device)
        report = (lambda i, n, s=subset: on_batch(s, i, n)) if on_batch else None
        logits = collect_logits(model, loader, to_input, views=views, autocast=ctx.autocast, on_batch=report)
        record_unreadable(ctx.run_dir, fold, loader.dataset)
        logits = blank_unreadable(logits, loader.dataset)
        frame = prediction_frame(table["sample_id"].tolist(), table["label_index"].to_numpy(), fold, logits)
        write_predictions(ctx.run_dir, fold, subset, frame)


def predict_run(run_dir: str | Path, views: Sequence[str], *, folds: Iterable[int] | None = None,
                device: str | None = None, batch_size: int | None = None) -> None:
    """Re-predict a run's folds (default: every fold with weights) with ``views``, without retraining.

    Replaces the folds' prediction files. When every fold with weights or predictions was re-predicted, the
    views also become the run's ``tta_views`` (its stored config), so the config keeps describing the
    predictions on disk and folds trained later predict the same views. Without ``folds``, a finished fold
    whose weights file is gone is refused by name (:class:`RunError`) rather than left with other views.
    """
    from engine.runs import SUBSETS, predictions_path, weights_path, write_config
    from engine.training.models import load_fold_model

    views = validate_tta_views(views, field="views")
    if folds is None:
        _refuse_lost_weights(run_dir)
    ctx = build_context(run_dir, device)
    all_folds = range(ctx.cfg.split.k)
    trained = [f for f in all_folds if weights_path(run_dir, f).is_file()]
    folds = trained if folds is None else list(folds)
    missing = [f for f in folds if not weights_path(run_dir, f).is_file()]
    if missing or not folds:
        raise RunError(f"Run {Path(run_dir).name!r} has no trained weights for fold(s) {missing or list(all_folds)}; "
                       "train (or resume) it before predicting.")
    for fold in folds:
        model, _ = load_fold_model(run_dir, fold, device=ctx.device)
        predict_fold(ctx, model, fold, views, batch_size=batch_size)
    predicted = {f for f in all_folds if any(predictions_path(run_dir, f, s).is_file() for s in SUBSETS)}
    if set(folds) >= predicted | set(trained):
        write_config(run_dir, ctx.cfg.model_copy(update={"tta_views": views}).model_dump(mode="json"))


def _refuse_lost_weights(run_dir: str | Path) -> None:
    """:class:`RunError` naming the finished folds whose weights file is gone: they cannot be predicted again."""
    from engine.runs import read_run

    record = read_run(run_dir)
    lost, trained = record.missing_weights(), record.weights
    if lost:
        name = Path(run_dir).name
        files = ", ".join(repr(str(p)) for _, p in lost)
        others = f", or predict the other folds (--folds {','.join(map(str, trained))})" if trained else ""
        raise RunError(f"Run {name!r}: fold(s) {[f for f, _ in lost]} are done but their weights file is missing "
                       f"({files}), so their predictions cannot be made again. Resume the run to train them again "
                       f"(python -m engine resume {name}){others}.")
