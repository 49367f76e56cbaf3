"""The training loop: one function, read top to bottom.

It runs under Hugging Face Accelerate, so `accelerate launch` / `torchrun` with several
processes gives data-parallel training with no code change (single process: a thin wrapper).
Everything a strategy or a callback does plugs into marked places; the loop itself never knows
which strategy runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import FitConfig
from ..data.batching import EncodedDataset, make_loader
from ..evaluation.metrics import HIGHER_IS_BETTER, headline, task_metrics
from ..inference import run_batches
from ..model import TransferModel
from ..strategies.base import OptimConfig, Strategy
from .callbacks import Callback, CallbackList, EarlyStopping, TrainState
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint, state_dict_copy
from .optim import build_optimizer, build_scheduler


@dataclass
class TrainResult:
    state: TrainState
    train_seconds: float
    examples_seen: int
    units_seen: int  # useful (non-padding) tokens, or images
    history: list[dict[str, Any]] = field(default_factory=list)


def training_step(model: torch.nn.Module, core: TransferModel, strategy: Strategy, batch: dict) -> dict[str, torch.Tensor]:
    """Forward one batch; the dict carries `loss`, `logits` and every named loss part."""
    outputs = model(batch)
    parts = {"task_loss": strategy.task_loss_weight * core.task_loss(outputs, batch)}
    parts.update(strategy.extra_losses(core, batch, outputs))
    return {"loss": sum(parts.values()), "logits": outputs["logits"], **parts}


def validate(core: TransferModel, dataset: EncodedDataset, collate: Callable, batch_size: int,
             task: str, label_names: list[str]) -> dict[str, float]:
    """Headline metrics and loss on the validation set (eval mode, no autograd)."""
    core.eval()
    logits = run_batches(lambda b: core(b)["logits"], dataset, collate, batch_size)
    core.train()
    metrics = headline(task, task_metrics(task, dataset.targets, logits, label_names))
    targets = torch.as_tensor(dataset.targets)
    metrics["loss"] = float(core.head.loss(torch.from_numpy(logits), targets))
    return metrics


def train(model: TransferModel, strategy: Strategy, train_set: EncodedDataset, val_set: EncodedDataset,
          collate: Callable, cfg: FitConfig, label_names: list[str], checkpoint_dir: Path | None = None,
          callbacks: list[Callback] | None = None, batch_sampler: Any = None) -> TrainResult:
    from accelerate import Accelerator

    accelerator = Accelerator()
    task = cfg.task
    metric = cfg.validation_metric

    # 1. What trains, and how fast each part learns: the strategy decides.
    strategy.prepare(model)
    optim = OptimConfig.from_config(cfg)
    optimizer = build_optimizer(strategy.param_groups(model, optim), cfg)
    train_loader = make_loader(train_set, collate, cfg.batch_size, shuffle=True, bucket=cfg.bucket, seed=cfg.seed,
                               batch_sampler=batch_sampler)
    total_steps = cfg.epochs * len(train_loader)
    scheduler = build_scheduler(optimizer, cfg, total_steps)

    state = TrainState(epochs=cfg.epochs, steps_per_epoch=len(train_loader), metric=metric,
                       higher_is_better=HIGHER_IS_BETTER.get(metric, True))
    best_weights: dict[str, torch.Tensor] | None = None
    # 2. Resume: weights, optimizer, schedule and loop state from the last finished epoch.
    if cfg.resume and checkpoint_dir is not None and has_checkpoint(checkpoint_dir):
        state, best_weights = load_checkpoint(checkpoint_dir, model, optimizer, scheduler)

    wrapped, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    events = CallbackList([*(callbacks or []), EarlyStopping(cfg.patience)])
    events.fire("before_fit", state)
    started, examples, units = time.perf_counter(), 0, 0

    def run_validation() -> None:
        nonlocal best_weights
        values = validate(model, val_set, collate, cfg.eval_batch_size, task, label_names)
        state.last_validation = values
        state.history.append({"epoch": state.epoch + 1, "step": state.step, "train_loss": state.last_loss,
                              **{f"val_{k}": v for k, v in values.items()}})
        if state.improved(values[metric]):
            state.best_value, state.best_step, state.validations_since_best = values[metric], state.step, 0
            best_weights = state_dict_copy(model)
        else:
            state.validations_since_best += 1
        events.fire("after_validation", state)

    while state.epoch < cfg.epochs and not state.should_stop:
        # Seeding per epoch makes shuffling and dropout identical after a resume.
        torch.manual_seed(cfg.seed + 1009 * state.epoch)
        # Accelerate's loader re-sets the sampler's epoch from its own iteration counter on every
        # __iter__ (0 in a fresh process), so a resumed run would replay epoch 0's order: set the
        # loader's counter too, not only our sampler.
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(state.epoch)
        _sampler(train_loader).set_epoch(state.epoch)
        strategy.on_epoch_start(model, state.epoch)
        wrapped.train()
        events.fire("before_epoch", state)
        losses: list[float] = []
        for batch in train_loader:
            out = training_step(wrapped, model, strategy, batch)
            accelerator.backward(out["loss"])
            if cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            losses.append(float(out["loss"].detach()))
            state.last_loss = float(np.mean(losses[-50:]))
            examples += len(batch["labels"])
            units += int(batch["attention_mask"].sum()) if "attention_mask" in batch else len(batch["labels"])
            events.fire("after_batch", state)
            if cfg.eval_every and state.step % cfg.eval_every == 0:
                run_validation()
                if state.should_stop:
                    break
        if not cfg.eval_every or state.step % cfg.eval_every != 0:
            run_validation()
        state.epoch += 1
        events.fire("after_epoch", state)
        if checkpoint_dir is not None and accelerator.is_main_process:
            save_checkpoint(checkpoint_dir, model, best_weights, optimizer, scheduler, state)

    # 3. The best validated weights, not the last ones, are the result.
    if best_weights is not None:
        model.load_state_dict(best_weights)
    model.eval()
    events.fire("after_fit", state)
    return TrainResult(state, time.perf_counter() - started, examples, units, state.history)


def _sampler(loader: Any) -> Any:
    """The LengthBucketSampler under whatever wrappers Accelerate put around it."""
    sampler = loader.batch_sampler
    while not hasattr(sampler, "set_epoch") and hasattr(sampler, "batch_sampler"):
        sampler = sampler.batch_sampler
    return sampler
