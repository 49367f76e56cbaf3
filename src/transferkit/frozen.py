"""A frozen bottom computed once: freeze-bottom:K trains the top of the network on stored outputs.

The K frozen layer groups are a fixed function of the input — they run in eval mode, without
dropout (model.py) — so their output for every training and validation example is computed in
one inference pass (length-sorted batches, no autograd) and kept in memory, and every epoch the
top of the network trains on it: the forward cost of the frozen part is paid once, not once
per epoch. Text keeps one [tokens, D] tensor per example (no padding is stored; batches are
padded as they are drawn), images one [C, H, W] map. The cached dataset keeps the examples'
token counts, so length bucketing draws exactly the batches the uncached run draws.

Invalidation is by construction: the cache lives for one `fit`, built from that run's weights
and data. It is trusted only after the top run on it has reproduced the full forward on a few
examples (an encoder that does not split cleanly falls back to running every layer), and it is
skipped, with a log line, when it would take more than `MAX_BYTES` of memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data.batching import EncodedDataset, make_collate, stack_fields
from .inference import sorted_batches
from .model import TransferModel
from .zoo.base import Backbone

MAX_BYTES = 4 * 2**30  # keep the cache well inside a laptop's memory
TOLERANCE = 1e-4  # max |Δ feature| between the top on cached outputs and the full forward
CHECK_EXAMPLES = 8


@dataclass
class FrozenBottomCollate:
    """Batches of stored bottom outputs: padded per batch (text, with its attention mask) or
    stacked (images), tagged with how many groups produced them."""

    k: int
    sequence: bool

    def __call__(self, pairs: list[tuple[torch.Tensor, dict[str, Any]]]) -> dict[str, torch.Tensor]:
        states = [state for state, _ in pairs]
        if self.sequence:
            width = max(state.shape[0] for state in states)
            padded = states[0].new_zeros((len(states), width, states[0].shape[1]))
            mask = torch.zeros((len(states), width), dtype=torch.long)
            for row, state in enumerate(states):
                padded[row, : state.shape[0]] = state
                mask[row, : state.shape[0]] = 1
            batch = {"frozen_state": padded, "attention_mask": mask}
        else:
            batch = {"frozen_state": torch.stack(states)}
        return {**batch, "frozen_groups": torch.tensor(self.k), **stack_fields(pairs)}


@dataclass
class FrozenBottomSets:
    train: EncodedDataset
    val: EncodedDataset
    collate: FrozenBottomCollate
    seconds: float
    megabytes: float


def frozen_bottom_sets(model: TransferModel, train: EncodedDataset, val: EncodedDataset, batch_size: int,
                       log: Callable[[str], None]) -> FrozenBottomSets | None:
    """The training and validation sets as outputs of the model's frozen bottom, or None (with a
    log line saying why) when the backbone cannot split, the cache would be too large, or the
    split does not reproduce the full forward."""
    backbone, k = model.backbone, model.frozen_bottom
    if not backbone.supports_bottom_split:
        log(f"{backbone.source}: its frozen bottom cannot be run apart; computing it every step")
        return None
    started = time.perf_counter()
    collate = make_collate(backbone.preprocessor)
    was_training = backbone.training
    backbone.eval()
    try:
        states = []
        for dataset in (train, val):
            outputs = _bottom_outputs(backbone, k, dataset, collate, batch_size, MAX_BYTES - sum(_bytes(s) for s in states))
            if outputs is None:
                log(f"frozen bottom: its outputs would need more than {MAX_BYTES / 2**30:.0f} GiB; computing it every step")
                return None
            states.append(outputs)
        cached_collate = FrozenBottomCollate(k, sequence=backbone.modality == "text")
        difference = _difference(backbone, train, collate, states[0], cached_collate)
    finally:
        backbone.train(was_training)
    if difference > TOLERANCE:
        log(f"frozen bottom: the top on stored outputs differs from the full forward by {difference:.2g}; "
            "computing it every step")
        return None
    sets = FrozenBottomSets(
        train=EncodedDataset(states[0], train.targets, train.sizes, train.extras),
        val=EncodedDataset(states[1], val.targets, val.sizes, val.extras),
        collate=cached_collate, seconds=time.perf_counter() - started,
        megabytes=sum(_bytes(s) for s in states) / 1e6)
    log(f"frozen bottom (layer groups 0-{k - 1}) computed once for {len(train) + len(val)} examples in "
        f"{sets.seconds:.1f}s ({sets.megabytes:.0f} MB); the top trains on it")
    return sets


def _bottom_outputs(backbone: Backbone, k: int, dataset: EncodedDataset, collate: Callable, batch_size: int,
                    budget: float) -> list[torch.Tensor] | None:
    """Per example, the output of groups [0, k): text without its padding; None over `budget` bytes."""
    outputs: list[torch.Tensor | None] = [None] * len(dataset)
    used = 0
    with torch.inference_mode():
        for indices, batch in sorted_batches(dataset, collate, batch_size):
            state = backbone.bottom(batch, k).float()
            lengths = batch["attention_mask"].sum(1).tolist() if "attention_mask" in batch else None
            for row, index in enumerate(indices):
                one = state[row, : lengths[row]] if lengths is not None else state[row]
                outputs[index] = one.clone()
                used += outputs[index].numel() * 4
            if used > budget:
                return None
    return outputs  # type: ignore[return-value]


def _difference(backbone: Backbone, dataset: EncodedDataset, collate: Callable, states: list[torch.Tensor],
                cached_collate: FrozenBottomCollate) -> float:
    """max |forward(raw) − forward(stored bottom)| on the first few examples, in eval mode."""
    rows = list(range(min(CHECK_EXAMPLES, len(dataset))))
    if not rows:
        return 0.0
    with torch.inference_mode():
        full = backbone(collate([dataset[i] for i in rows]))
        top = backbone(cached_collate([(states[i], {}) for i in rows]))
    return float(np.max(np.abs((full - top).numpy())))


def _bytes(states: list[torch.Tensor]) -> int:
    return sum(state.numel() * state.element_size() for state in states)
