"""Task heads: a small module on top of pooled features, owning its loss.

- classification: dropout → linear → logits; cross-entropy.
- regression: dropout → linear → one value; MSE on standardised targets (the head stores the
  training mean/std and returns predictions in the original units).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # the label of an unlabelled row (PyTorch's cross_entropy default)


class ClassificationHead(nn.Module):
    task = "classification"

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over labelled rows; rows labelled IGNORE_INDEX (unlabelled) are skipped."""
        labels = labels.long()
        if not bool((labels != IGNORE_INDEX).any()):
            # A batch of unlabelled rows only (e.g. a distillation transfer set): cross_entropy
            # would average over zero rows and return NaN; the task loss is 0 instead.
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


class RegressionHead(nn.Module):
    task = "regression"

    def __init__(self, in_features: int, dropout: float = 0.1, target_mean: float = 0.0, target_std: float = 1.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, 1)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(max(target_std, 1e-6))))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predictions in the original units, shape [B, 1]."""
        return self.linear(self.dropout(features)) * self.target_std + self.target_mean

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scaled = (predictions.float().squeeze(-1) - self.target_mean) / self.target_std
        return F.mse_loss(scaled, (targets.float() - self.target_mean) / self.target_std)


def make_head(task: str, in_features: int, num_outputs: int, dropout: float, targets=None) -> nn.Module:
    if task == "regression":
        mean = float(targets.mean()) if targets is not None else 0.0
        std = float(targets.std()) if targets is not None else 1.0
        return RegressionHead(in_features, dropout, mean, std)
    return ClassificationHead(in_features, num_outputs, dropout)
