"""The inference path: no autograd, large batches sorted by length, results in input order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.batching import EncodedDataset, LengthBucketSampler, make_collate
from .zoo.base import Backbone, Preprocessor


def sorted_batches(dataset: EncodedDataset, collate: Callable, batch_size: int
                   ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """(indices, batch) over length-sorted batches (least padding), without labels."""
    for indices in LengthBucketSampler(dataset.sizes, batch_size, shuffle=False):
        batch = collate([dataset[i] for i in indices])
        batch.pop("labels", None)
        yield indices, batch


def run_batches(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], dataset: EncodedDataset,
    collate: Callable, batch_size: int,
) -> np.ndarray:
    """Apply `fn` to length-sorted batches under inference_mode; rows come back in input order."""
    outputs: list[np.ndarray] = []
    order: list[int] = []
    with torch.inference_mode():
        for indices, batch in sorted_batches(dataset, collate, batch_size):
            outputs.append(fn(batch).float().cpu().numpy())
            order.extend(indices)
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    stacked = np.concatenate(outputs)
    result = np.empty_like(stacked)
    result[np.asarray(order)] = stacked
    return result


def model_logits(model: nn.Module, preprocessor: Preprocessor, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
    """Logits (or regression outputs) of a TransferModel for raw items."""
    was_training = model.training
    model.eval()
    try:
        dataset = EncodedDataset.build(preprocessor, items, None)
        return run_batches(lambda b: model(b)["logits"], dataset, make_collate(preprocessor), batch_size)
    finally:
        model.train(was_training)


def backbone_features(backbone: Backbone, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
    """Pooled features [N, D] of a (frozen) backbone."""
    was_training = backbone.training
    backbone.eval()
    try:
        preprocessor = backbone.preprocessor
        dataset = EncodedDataset.build(preprocessor, items, None)
        return run_batches(backbone, dataset, make_collate(preprocessor), batch_size)
    finally:
        backbone.train(was_training)
