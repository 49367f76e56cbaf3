"""Optimizer and learning-rate schedule from the config (torch optimizers, transformers schedules)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import FitConfig


def build_optimizer(param_groups: list[dict[str, Any]], cfg: FitConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum)
    # The fused kernel updates every parameter in one pass; the default multi-tensor one makes
    # several passes over the weights, moments and gradients (measured on MiniLM-L6, 2 cores:
    # 141 ms → 24 ms per step, a third of the whole step). Same update rule.
    return torch.optim.AdamW(param_groups, lr=cfg.lr, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: FitConfig, total_steps: int):
    """Linear warmup over `warmup_ratio` of the steps, then linear/cosine decay or constant."""
    from transformers.optimization import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                                           get_linear_schedule_with_warmup)

    warmup = int(round(cfg.warmup_ratio * total_steps))
    if cfg.scheduler == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    if cfg.scheduler == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
