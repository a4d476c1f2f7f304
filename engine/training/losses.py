"""Losses: cross-entropy (PyTorch's own label smoothing) and focal loss, with optional class weights."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.training.config import TrainConfig


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``(1 - p_t)^gamma`` times the (label-smoothed) cross-entropy.

    ``weight`` (C,) scales each sample by its class weight; the mean is over the weights, like
    ``nn.CrossEntropyLoss``. ``gamma=0`` and no smoothing reduce it to cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        log_p_t = log_p.gather(1, target[:, None]).squeeze(1)
        w_t = self.weight[target] if self.weight is not None else torch.ones_like(log_p_t)
        # the same terms as nn.CrossEntropyLoss(weight, label_smoothing), times the focal factor
        ce = -log_p_t * w_t
        if self.label_smoothing > 0:
            smooth = -(log_p * self.weight).mean(dim=1) if self.weight is not None else -log_p.mean(dim=1)
            ce = (1.0 - self.label_smoothing) * ce + self.label_smoothing * smooth
        loss = (1.0 - log_p_t.exp()).clamp(min=0).pow(self.gamma) * ce
        return loss.sum() / w_t.sum()


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (C * count_c)`` per class (scikit-learn's 'balanced'); absent classes get weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def build_loss(train_cfg: TrainConfig, train_labels: np.ndarray, num_classes: int) -> nn.Module:
    """The training loss of the config; class weights from the fold's training labels when 'balanced'."""
    weight = balanced_class_weights(train_labels, num_classes) if train_cfg.class_weights == "balanced" else None
    if train_cfg.loss == "focal":
        return FocalLoss(train_cfg.focal_gamma, weight=weight, label_smoothing=train_cfg.label_smoothing)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=train_cfg.label_smoothing)
