"""Callbacks: a fixed, named list of events; they stop training with a flag, never an exception.

Events, in order: before_fit, before_epoch, after_batch, after_validation, after_epoch,
after_fit (fastai's event list; skorch's on_epoch_end hooks).
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io_utils import write_text_atomic

EVENTS = ("before_fit", "before_epoch", "after_batch", "after_validation", "after_epoch", "after_fit")


@dataclass
class TrainState:
    """Everything the loop knows; callbacks read it and may set `should_stop`."""

    epochs: int
    steps_per_epoch: int
    metric: str
    higher_is_better: bool
    epoch: int = 0
    step: int = 0
    last_loss: float = float("nan")
    best_value: float | None = None
    best_step: int = 0
    validations_since_best: int = 0
    should_stop: bool = False
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    last_validation: dict[str, float] = field(default_factory=dict)

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher_is_better else value < self.best_value


class Callback:
    """Override any of the event methods; each receives the shared TrainState."""

    def before_fit(self, state: TrainState) -> None: ...
    def before_epoch(self, state: TrainState) -> None: ...
    def after_batch(self, state: TrainState) -> None: ...
    def after_validation(self, state: TrainState) -> None: ...
    def after_epoch(self, state: TrainState) -> None: ...
    def after_fit(self, state: TrainState) -> None: ...


class CallbackList:
    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = callbacks

    def fire(self, event: str, state: TrainState) -> None:
        assert event in EVENTS, event
        for callback in self.callbacks:
            getattr(callback, event)(state)


class EarlyStopping(Callback):
    """Stop after `patience` validations without improvement of the monitored metric."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def after_validation(self, state: TrainState) -> None:
        if self.patience and state.validations_since_best >= self.patience:
            state.should_stop = True
            state.stop_reason = f"early stopping: no {state.metric} improvement in {self.patience} validation(s)"


class ProgressBar(Callback):
    """A tqdm bar on a terminal; silent when quiet or when stderr is not a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None

    def before_epoch(self, state: TrainState) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.steps_per_epoch, desc=f"epoch {state.epoch + 1}/{state.epochs}", leave=False)

    def after_batch(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{state.last_loss:.4f}")

    def after_epoch(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.enabled:
            return
        shown = ", ".join(f"{k} {v:.4f}" for k, v in state.last_validation.items())
        print(f"epoch {state.epoch + 1}/{state.epochs}: {shown}", file=sys.stderr)


class HistoryWriter(Callback):
    """history.csv (and the in-memory history) after every validation, so a crash keeps it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def after_validation(self, state: TrainState) -> None:
        if self.path is None or not state.history:
            return
        columns = list(dict.fromkeys(k for row in state.history for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(state.history)
        write_text_atomic(self.path, buffer.getvalue())
