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
from ..hardware import autocast, resolve_precision, run_threads
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint, state_dict_copy
from .optim import build_optimizer, build_scheduler
from .throughput import step_flops


@dataclass
class TrainResult:
    state: TrainState
    train_seconds: float  # the whole loop: steps, validation, checkpoints
    examples_seen: int  # over all processes
    units_seen: int  # useful (non-padding) tokens, or images, over all processes
    history: list[dict[str, Any]] = field(default_factory=list)
    positions_seen: int = 0  # batch positions including padding, over all processes
    step_seconds: float = 0.0  # forward, backward and optimizer step only
    precision: str = "fp32"
    threads: int = 1
    processes: int = 1
    step_flops: tuple[float, int] = (0.0, 0)  # FLOPs of one step and the padded positions they covered
    most_trainable: int = 0  # the most parameters that trained in any epoch (schedules unfreeze more)


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
    """Train `model` with `strategy` on `train_set`, validating on `val_set`; the best weights win."""
    with run_threads(cfg.threads) as threads:
        return _train(model, strategy, train_set, val_set, collate, cfg, label_names, checkpoint_dir, callbacks,
                      batch_sampler, threads)


def _train(model: TransferModel, strategy: Strategy, train_set: EncodedDataset, val_set: EncodedDataset,
           collate: Callable, cfg: FitConfig, label_names: list[str], checkpoint_dir: Path | None,
           callbacks: list[Callback] | None, batch_sampler: Any, threads: int) -> TrainResult:
    from accelerate import Accelerator

    # Under `accelerate launch` / `torchrun` this is one of several processes (DDP, gloo on CPU):
    # each trains on its shard of every epoch's batches and gradients are averaged across them.
    accelerator = Accelerator(cpu=True)  # transferkit trains on the CPU (the rest of the pipeline runs there)
    precision = resolve_precision(cfg.precision)
    task = cfg.task
    metric = cfg.validation_metric

    # 1. What trains, and how fast each part learns: the strategy decides.
    strategy.prepare(model)
    optim = OptimConfig.from_config(cfg)
    optimizer = build_optimizer(strategy.param_groups(model, optim), cfg)
    plain_loader = make_loader(train_set, collate, cfg.batch_size, shuffle=True, bucket=cfg.bucket, seed=cfg.seed,
                               batch_sampler=batch_sampler)
    total_steps = cfg.epochs * len(plain_loader)
    scheduler = build_scheduler(optimizer, cfg, total_steps)

    state = TrainState(epochs=cfg.epochs, steps_per_epoch=len(plain_loader), metric=metric,
                       higher_is_better=HIGHER_IS_BETTER.get(metric, True))
    best_weights: dict[str, torch.Tensor] | None = None
    # 2. Resume: weights, optimizer, schedule and loop state from the last finished epoch.
    if cfg.resume and checkpoint_dir is not None and has_checkpoint(checkpoint_dir):
        state, best_weights = load_checkpoint(checkpoint_dir, model, optimizer, scheduler)

    wrapped, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, plain_loader, scheduler)
    state.steps_per_epoch = len(train_loader)  # this process's share of the batches
    events = CallbackList([*(callbacks or []), EarlyStopping(cfg.patience)])
    events.fire("before_fit", state)
    started, step_seconds, most_trainable = time.perf_counter(), 0.0, 0
    counts = torch.zeros(3, dtype=torch.long)  # examples, useful units, padded positions

    def run_validation() -> None:
        nonlocal best_weights
        with autocast(precision):
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
        trained_before = _trainable(model)
        strategy.on_epoch_start(model, state.epoch)
        if accelerator.num_processes > 1 and _trainable(model) != trained_before:
            # DDP registers the parameters that train when it wraps the model: wrap again when
            # a strategy unfreezes more (head-then-full, gradual unfreezing).
            wrapped = accelerator.prepare_model(model)
        most_trainable = max(most_trainable, model.parameter_counts()[0])
        wrapped.train()
        events.fire("before_epoch", state)
        losses: list[float] = []
        for batch in train_loader:
            step_started = time.perf_counter()
            # bf16 autocast where the CPU has it: matmuls in bf16, weights and optimizer in fp32.
            with autocast(precision):
                out = training_step(wrapped, model, strategy, batch)
            accelerator.backward(out["loss"])
            if cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_seconds += time.perf_counter() - step_started
            state.step += 1
            losses.append(float(out["loss"].detach()))
            state.last_loss = float(np.mean(losses[-50:]))
            counts += torch.tensor(_batch_counts(batch))
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

    train_seconds = time.perf_counter() - started
    # 3. The best validated weights, not the last ones, are the result.
    if best_weights is not None:
        model.load_state_dict(best_weights)
    # 4. What one step computes, for the throughput accounting (train/throughput.py); in eval
    # mode, so no BatchNorm statistics move (the arithmetic is the same).
    model.eval()
    flops = step_flops(lambda batch: training_step(model, model, strategy, batch), model, plain_loader, precision)
    events.fire("after_fit", state)
    examples, units, positions = (int(v) for v in accelerator.reduce(counts, reduction="sum"))
    return TrainResult(state, train_seconds, examples, units, state.history, positions_seen=positions,
                       step_seconds=step_seconds, precision=precision, threads=threads,
                       processes=accelerator.num_processes, step_flops=flops, most_trainable=most_trainable)


def _batch_counts(batch: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(examples, useful units, padded positions) of a batch: tokens for text, else images."""
    examples = len(batch["labels"])
    if "attention_mask" in batch:
        return examples, int(batch["attention_mask"].sum()), int(batch["attention_mask"].numel())
    return examples, examples, examples


def _trainable(model: torch.nn.Module) -> frozenset[str]:
    return frozenset(name for name, param in model.named_parameters() if param.requires_grad)


def _sampler(loader: Any) -> Any:
    """The LengthBucketSampler under whatever wrappers Accelerate put around it."""
    sampler = loader.batch_sampler
    while not hasattr(sampler, "set_epoch") and hasattr(sampler, "batch_sampler"):
        sampler = sampler.batch_sampler
    return sampler
