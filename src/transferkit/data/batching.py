"""Batching: encode once, pad per batch, and bucket by length so little compute is padding.

Random batches of short texts pad every example to the longest one in the batch; on VADER movie
snippets that wastes ~44% of the FLOPs. `LengthBucketSampler` keeps training order random (it
shuffles, groups examples of similar length within large shuffled windows, then shuffles the
batches) while cutting the padding, the scheme of fairseq/AllenNLP "bucket iterators".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..zoo.base import Preprocessor


class EncodedDataset(Dataset):
    """Pre-encoded examples (token ids / uint8 images) with their targets.

    `extras` are further per-example arrays that batches carry under their own key — e.g. a
    teacher's cached logits for distillation, or domain labels for domain adaptation — so a
    strategy can use them in its loss without any change to the loop.
    """

    def __init__(self, encoded: Sequence[Any], targets: np.ndarray | None, sizes: Sequence[int],
                 extras: dict[str, np.ndarray] | None = None) -> None:
        self.encoded = encoded
        self.targets = targets
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.extras = dict(extras or {})
        for name, values in self.extras.items():
            if len(values) != len(encoded):
                raise ValueError(f"extra field {name!r} has {len(values)} rows for {len(encoded)} examples")

    @classmethod
    def build(cls, preprocessor: Preprocessor, items: Sequence[Any], targets: np.ndarray | None,
              extras: dict[str, np.ndarray] | None = None) -> EncodedDataset:
        encoded = preprocessor.encode(items)
        return cls(encoded, targets, [preprocessor.size(e) for e in encoded], extras)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        fields = {} if self.targets is None else {"labels": self.targets[index]}
        fields.update({name: values[index] for name, values in self.extras.items()})
        return self.encoded[index], fields


class LengthBucketSampler(Sampler[list[int]]):
    """Yields batches of indices; each example exactly once per epoch.

    shuffle=True: permute, cut into windows of `window` batches, sort each window by length,
    batch it, then shuffle the order of all batches (seeded by seed + epoch, so a resumed run
    sees the same order). shuffle=False: sort everything by length (fastest for inference).
    """

    def __init__(self, sizes: np.ndarray, batch_size: int, shuffle: bool, bucket: bool = True,
                 seed: int = 0, window: int = 50) -> None:
        self.sizes = np.asarray(sizes)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket = bucket
        self.seed = seed
        self.window = window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.sizes) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def batches(self) -> list[list[int]]:
        n = len(self.sizes)
        if not self.shuffle:
            order = np.argsort(-self.sizes, kind="stable") if self.bucket else np.arange(n)
            return [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng(self.seed + 7919 * self.epoch)
        order = rng.permutation(n)
        if not self.bucket:
            return [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        span = self.batch_size * self.window
        batches = []
        for start in range(0, n, span):
            window = order[start : start + span]
            window = window[np.argsort(self.sizes[window], kind="stable")]
            batches.extend(window[i : i + self.batch_size].tolist() for i in range(0, len(window), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]


def stack_fields(pairs: list[tuple[Any, dict[str, Any]]]) -> dict[str, torch.Tensor]:
    """'labels' and any extras, stacked per key."""
    return {key: torch.as_tensor(np.stack([fields[key] for _, fields in pairs])) for key in pairs[0][1]}


def make_collate(preprocessor: Preprocessor):
    """Collate (encoded, fields) pairs into one batch dict: model inputs, 'labels', extras."""

    def collate(pairs: list[tuple[Any, dict[str, Any]]]) -> dict[str, torch.Tensor]:
        return {**preprocessor.collate([encoded for encoded, _ in pairs]), **stack_fields(pairs)}

    return collate


def feature_collate(pairs: list[tuple[Any, dict[str, Any]]]) -> dict[str, torch.Tensor]:
    """Collate cached feature vectors (the linear-probe path skips the backbone entirely)."""
    return {"features": torch.stack([torch.as_tensor(f) for f, _ in pairs]), **stack_fields(pairs)}


def make_loader(dataset: EncodedDataset, collate, batch_size: int, shuffle: bool, bucket: bool, seed: int,
                batch_sampler: Sampler[list[int]] | None = None) -> DataLoader:
    """A loader over length buckets, or over `batch_sampler` when a strategy needs its own batches
    (it must have `set_epoch(epoch)` so resumed runs replay the same order)."""
    sampler = batch_sampler or LengthBucketSampler(dataset.sizes, batch_size, shuffle=shuffle, bucket=bucket, seed=seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
