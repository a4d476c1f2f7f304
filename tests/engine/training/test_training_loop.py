"""The loop: every optimizer / scheduler / loss through one helper, overfit one batch, losses, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.training.config import ModelConfig, TrainConfig
from engine.training.data import DeviceInput
from engine.training.loop import build_optimizer, classification_metrics, is_better, train_one_epoch
from engine.training.losses import FocalLoss, balanced_class_weights, build_loss
from engine.training.models import create_model

DATA_CONFIG = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def one_batch(n: int = 16, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % classes


def losses_over_steps(steps: int = 12, model_name: str = "test_vit", **train) -> list[float]:
    """Train a tiny model on one fixed batch for ``steps`` epochs of one batch; the loss after each."""
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=steps, **train)
    x, y = one_batch()
    model = create_model(ModelConfig(name=model_name), num_classes=4)
    optimizer, scheduler = build_optimizer(model, cfg, updates_per_epoch=1)
    loss_fn = build_loss(cfg, y.numpy(), 4)
    to_input = DeviceInput(DATA_CONFIG, torch.device("cpu"))
    losses = []
    for step in range(steps):
        result = train_one_epoch(
            model, [(x, y)], to_input, loss_fn, optimizer, scheduler=scheduler, step=step, grad_clip=cfg.grad_clip
        )
        losses.append(result.loss)
    return losses


def test_overfit_one_batch_loss_goes_down():
    losses = losses_over_steps(steps=25, lr=3e-3, weight_decay=0.0, scheduler="none")
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("scheduler", ["cosine", "step", "none"])
def test_every_optimizer_and_scheduler_trains(optimizer, scheduler):
    lr = {"sgd": 0.05, "rmsprop": 1e-3}.get(optimizer, 3e-3)
    losses = losses_over_steps(
        steps=8, optimizer=optimizer, scheduler=scheduler, lr=lr, warmup_epochs=1, step_epochs=4, grad_clip=5.0
    )
    assert all(np.isfinite(losses)) and min(losses[1:]) < losses[0], losses


@pytest.mark.parametrize(
    ("loss", "extra"),
    [
        ("cross_entropy", {}),
        ("cross_entropy", {"label_smoothing": 0.1, "class_weights": "balanced"}),
        ("focal", {}),
        ("focal", {"focal_gamma": 1.0, "label_smoothing": 0.1, "class_weights": "balanced"}),
    ],
)
def test_every_loss_trains(loss, extra):
    losses = losses_over_steps(steps=8, loss=loss, lr=3e-3, **extra)
    assert all(np.isfinite(losses)) and min(losses[1:]) < losses[0], losses


def test_sgd_is_nesterov_and_the_schedules_shape_the_lr():
    model = torch.nn.Linear(3, 2)
    opt, _ = build_optimizer(model, TrainConfig(optimizer="sgd", scheduler="none", lr=0.1), 10)
    assert opt.param_groups[0]["nesterov"] is True
    opt, sched = build_optimizer(model, TrainConfig(scheduler="cosine", warmup_epochs=1, epochs=4, lr=0.1), 10)
    lrs = []
    for step in range(1, 41):
        sched.step_update(num_updates=step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] < lrs[8] < lrs[9] == pytest.approx(0.1)  # linear warmup over the first epoch
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] < 1e-3  # then cosine to ~0
    opt, sched = build_optimizer(
        model, TrainConfig(scheduler="step", step_epochs=2, step_gamma=0.5, epochs=4, lr=0.1), 10
    )
    sched.step_update(num_updates=25)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits, target = torch.randn(10, 4), torch.arange(10) % 4
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target))
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0])
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, weight=weight, label_smoothing=0.1)(logits, target),
        F.cross_entropy(logits, target, weight=weight, label_smoothing=0.1),
    )
    assert FocalLoss(gamma=2.0)(logits, target) < F.cross_entropy(logits, target)


def test_balanced_class_weights_match_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0, 0, 0, 1, 2, 2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(balanced_class_weights(labels, 3).numpy(), expected, rtol=1e-6)


def test_metrics_and_monitor_direction():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]], dtype=np.float32)
    metrics = classification_metrics(logits, np.array([0, 1, 1]), 2)
    assert metrics["val_accuracy"] == pytest.approx(2 / 3)
    assert metrics["val_macro_f1"] == pytest.approx(2 / 3)
    assert metrics["val_loss"] > 0
    assert (
        is_better(0.1, 0.2, "val_loss")
        and not is_better(0.1, 0.2, "val_accuracy")
        and is_better(0.5, None, "val_macro_f1")
    )
