"""Two-domain training data: labelled source, target with none / few / all of its labels.

Batches are domain-balanced: every batch holds a fixed share of target examples, so losses that
compare the two feature distributions (DANN's discriminator, CORAL, MMD) always see both.
Unlabelled target examples carry the label -100, which cross-entropy ignores.

Images of the two domains rarely share a size (MNIST 28×28, scikit-learn digits 8×8): the policy
is fixed, not inferred — every image is made RGB and resized to the backbone's `--image-size`
(bilinear) by the backbone's preprocessor. `image_sizes` decodes every image file up front, so a
corrupt one is named before anything is written, and records the original sizes for the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from ..errors import DataError
from .examples import Split

UNLABELLED = -100
SOURCE, TARGET = 0, 1


def target_training_labels(split: Split, policy: str, few_per_class: int, seed: int) -> np.ndarray:
    """The target labels the learner may see: none, `few_per_class` per class, or all."""
    if policy == "all":
        return split.targets.astype(np.int64)
    labels = np.full(len(split), UNLABELLED, dtype=np.int64)
    if policy == "none":
        return labels
    if policy != "few":
        raise DataError(f"--target-labels must be none, few or all, not {policy!r}")
    rng = np.random.default_rng(seed)
    for cls in np.unique(split.targets):
        members = np.flatnonzero(split.targets == cls)
        chosen = rng.choice(members, size=min(few_per_class, len(members)), replace=False)
        labels[chosen] = cls
    return labels


def image_sizes(items: Sequence[Any]) -> Counter:
    """Counter of original sizes ("W×H") of images given as file paths or uint8 arrays.

    Each file is fully decoded (not only its header), so a truncated or corrupt file fails here,
    named, rather than halfway through training.
    """
    from PIL import Image

    sizes: Counter = Counter()
    for item in items:
        if isinstance(item, (str, Path)):
            try:
                with Image.open(item) as image:
                    image.load()
                    width, height = image.size
            except (OSError, SyntaxError, ValueError) as exc:
                raise DataError(f"{item}: corrupt or unreadable image ({type(exc).__name__}); remove or replace it") from None
        else:
            height, width = np.asarray(item).shape[:2]
        sizes[f"{width}×{height}"] += 1
    return sizes


def describe_sizes(sizes: Counter, limit: int = 4) -> list[str]:
    """The most common sizes, e.g. ["28×28 (5000)"], with "+N other sizes" past `limit`."""
    common = [f"{size} ({count})" for size, count in sizes.most_common(limit)]
    rest = len(sizes) - limit
    return common + ([f"+{rest} other sizes"] if rest > 0 else [])


def combine(source: Split, target: Split, target_labels: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """(items, labels, domain) of the concatenated source and target training examples."""
    items = list(source.items) + list(target.items)
    labels = np.concatenate([source.targets.astype(np.int64), target_labels])
    domain = np.concatenate([np.full(len(source), SOURCE), np.full(len(target), TARGET)]).astype(np.int64)
    return items, labels, domain


class DomainBalancedSampler(Sampler[list[int]]):
    """Batches of `batch_size` with round(target_share · batch_size) target examples each.

    An epoch is one pass over the source examples (each exactly once); target examples are drawn
    from a reshuffled cycle, so a smaller target set is revisited and a larger one is subsampled.
    Orders are seeded by seed + epoch, so a resumed run replays them.
    """

    def __init__(self, domain: np.ndarray, batch_size: int, target_share: float = 0.5, seed: int = 0) -> None:
        if not 0 < target_share < 1:
            raise DataError("the target share of each batch must be in (0, 1)")
        self.source = np.flatnonzero(domain == SOURCE)
        self.target = np.flatnonzero(domain == TARGET)
        if len(self.source) == 0 or len(self.target) == 0:
            raise DataError("domain adaptation needs both source and target training examples")
        self.n_source = self.source_per_batch(batch_size, target_share)
        self.n_target = max(1, batch_size - self.n_source)
        self.seed = seed
        self.epoch = 0

    @staticmethod
    def source_per_batch(batch_size: int, target_share: float) -> int:
        return max(1, batch_size - max(1, int(round(target_share * batch_size))))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.source) + self.n_source - 1) // self.n_source

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + 7919 * self.epoch)
        source = rng.permutation(self.source)
        repeats = -(-len(self) * self.n_target // len(self.target))
        target = np.concatenate([rng.permutation(self.target) for _ in range(repeats)])
        for i in range(len(self)):
            chunk_s = source[i * self.n_source:(i + 1) * self.n_source]
            chunk_t = target[i * self.n_target:(i + 1) * self.n_target]
            yield np.concatenate([chunk_s, chunk_t]).tolist()
