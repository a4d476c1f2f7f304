"""TensorBoard event files for every run, written next to its metrics.csv.

Layout (``tensorboard --logdir <workspace>/runs`` shows every run)::

    runs/<run_id>/tensorboard/fold<k>/   per epoch: loss/train, loss/val, metrics/val_accuracy,
                                         metrics/val_macro_f1, train/lr, perf/images_per_second,
                                         perf/epoch_seconds; text: the augmentation pipeline, the config
    runs/<run_id>/tensorboard/           once the run is done: hparams (model, lr, augmentation, study, ...)
                                         with the final CV metrics (cv/*) — TensorBoard's HParams tab

The scalars of ``fold<k>`` are metrics.csv's rows for fold k, one per epoch (step = epoch). Writing
is a side channel: any failure (a full disk, tensorboard's own errors) is logged once as a warning
and training goes on without event files.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from engine.runs.layout import tensorboard_dir

log = logging.getLogger(__name__)

# metrics.csv column -> TensorBoard tag
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "val_accuracy": "metrics/val_accuracy",
    "val_macro_f1": "metrics/val_macro_f1",
    "lr": "train/lr",
    "images_per_second": "perf/images_per_second",
    "epoch_seconds": "perf/epoch_seconds",
}
CV_TAGS = {"accuracy": "cv/accuracy", "macro_f1": "cv/macro_f1", "log_loss": "cv/log_loss",
           "mean_best_val_loss": "cv/mean_best_val_loss"}


def _warn(what: str, error: BaseException) -> None:
    log.warning("TensorBoard logging disabled for %s: %s: %s", what, type(error).__name__, error)


class FoldBoard:
    """The event file of one fold: created when the fold starts training, fed each metrics.csv row.

    Every method swallows its own errors (after one warning): TensorBoard must never stop a run.
    """

    def __init__(self, run_dir: str | Path, fold: int, *, augment: dict | None = None,
                 config: dict | None = None) -> None:
        self.fold = int(fold)
        self.where = f"{Path(run_dir).name} fold {self.fold}"
        self.writer = None
        path = tensorboard_dir(run_dir, fold)
        try:
            shutil.rmtree(path, ignore_errors=True)  # a fold trained again starts its curves over
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(path), flush_secs=10)
            if augment is not None:
                self.writer.add_text("augment", _code_block(_yaml(augment)), 0)
            if config:
                self.writer.add_text("config", _code_block(_yaml(config)), 0)
        except Exception as e:  # noqa: BLE001 - a side channel: warn, keep training
            self._fail(e)

    def _fail(self, error: BaseException) -> None:
        _warn(self.where, error)
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001
                pass
        self.writer = None

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One metrics.csv row (``fold``, ``epoch``, ``train_loss``, ``val_*``, ``lr``, ...) as scalars at step epoch."""
        if self.writer is None:
            return
        try:
            step = int(row["epoch"])
            for column, tag in SCALAR_TAGS.items():
                value = row.get(column)
                if value is not None:
                    self.writer.add_scalar(tag, float(value), step)
            self.writer.flush()
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception as e:  # noqa: BLE001
                _warn(self.where, e)
            self.writer = None


def open_fold_board(ctx, fold: int) -> FoldBoard:
    """The fold's board for a :class:`~engine.training.context.RunContext` (pipeline and config as text)."""
    return FoldBoard(ctx.run_dir, fold, augment=ctx.cfg.augment, config=ctx.cfg.model_dump(mode="json"))


# ---------------------------------------------------------------- run summary (hparams)


def run_hparams(cfg) -> dict[str, Any]:
    """The run's hyperparameters as TensorBoard wants them (str / float / int / bool), with the study it belongs to."""
    from engine.augment.presets import preset_name_of

    train = cfg.train
    augment = preset_name_of(cfg.augment, cfg.image_size) if cfg.augment is not None else "light"
    return {
        "model": cfg.model.name, "pretrained": str(cfg.model.pretrained), "image_size": int(cfg.image_size or 0),
        "k": int(cfg.split.k), "epochs": int(train.epochs), "batch_size": int(train.batch_size),
        "optimizer": train.optimizer, "lr": float(train.lr), "weight_decay": float(train.weight_decay),
        "scheduler": train.scheduler, "loss": train.loss, "label_smoothing": float(train.label_smoothing),
        "augment": augment or "custom", "seed": int(cfg.seed),
    }


def cv_metrics(run_dir: str | Path, monitor: str = "val_loss") -> dict[str, float]:
    """Final CV metrics of a run: OOF accuracy / macro-F1 / log loss (identity view), mean best val_loss."""
    from engine.analysis.load import load_predictions
    from engine.analysis.metrics import score, softmax
    from engine.runs.store import best_metrics

    out: dict[str, float] = {}
    best = best_metrics(run_dir, monitor)
    if "val_loss" in best:
        out["mean_best_val_loss"] = best["val_loss"]
    preds = load_predictions(run_dir, "oof", views=["identity"])
    if preds.n_samples:
        scores = score(preds.labels, proba=softmax(preds.logits[0]))
        out.update({k: float(scores[k]) for k in ("accuracy", "macro_f1", "log_loss")})
    return out


def write_run_summary(run_dir: str | Path, cfg, *, study: str | None = None) -> None:
    """hparams (with ``study``) and the final CV metrics into ``runs/<id>/tensorboard``; warns instead of failing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        metrics = {CV_TAGS[k]: v for k, v in cv_metrics(run_dir, cfg.train.monitor).items()}
        params = {**run_hparams(cfg), "study": study or "(none)"}
        with SummaryWriter(log_dir=str(tensorboard_dir(run_dir))) as writer:
            for summary in hparams(params, metrics):
                writer.file_writer.add_summary(summary)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, 0)
    except Exception as e:  # noqa: BLE001
        _warn(f"{Path(run_dir).name} (hparams)", e)


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def _code_block(text: str) -> str:
    """TensorBoard renders text as markdown: indent so YAML keeps its lines."""
    return "\n".join("    " + line for line in text.splitlines())
