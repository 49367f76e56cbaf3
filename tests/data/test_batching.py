"""LengthBucketSampler and collation: every example once per epoch, reproducible order, little
padding; per-batch dynamic padding; inference returns rows in input order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from transferkit.data.batching import EncodedDataset, LengthBucketSampler, feature_collate, make_collate, make_loader
from transferkit.inference import run_batches
from transferkit.zoo import load_backbone


def skewed_lengths(n: int, seed: int = 0) -> np.ndarray:
    """Mostly short texts with a long tail, like review snippets."""
    return np.clip(np.random.default_rng(seed).lognormal(3.0, 0.7, n).astype(int), 3, 256)


def padding_waste(batches: list[list[int]], sizes: np.ndarray) -> float:
    padded = sum(len(b) * sizes[b].max() for b in batches)
    return 1 - sizes.sum() / padded


@pytest.mark.parametrize("n,batch_size,seed,window", [
    (n, bs, seed, window)
    for (n, bs), seed, window in itertools.product(
        [(1, 4), (7, 3), (50, 1), (64, 16), (333, 16), (1000, 7)], [0, 3], [50, 2])
])
@pytest.mark.parametrize("shuffle,bucket", [(True, True), (True, False), (False, True), (False, False)])
def test_every_index_exactly_once_per_epoch(n, batch_size, seed, window, shuffle, bucket):
    sizes = skewed_lengths(n, seed)
    sampler = LengthBucketSampler(sizes, batch_size, shuffle=shuffle, bucket=bucket, seed=seed, window=window)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)  # DataLoader relies on __len__
        assert sorted(itertools.chain.from_iterable(batches)) == list(range(n))
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert all(isinstance(i, int) for b in batches for i in b)


@pytest.mark.parametrize("bucket", [True, False])
def test_epoch_order_changes_and_is_reproducible(bucket):
    sizes = skewed_lengths(500)

    def order(seed: int, epoch: int) -> list[list[int]]:
        sampler = LengthBucketSampler(sizes, 16, shuffle=True, bucket=bucket, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 0) == order(0, 0)
    assert order(0, 3) == order(0, 3)  # a resumed run at epoch 3 sees the same batches
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    # Not only the order of batches changes between epochs: their composition does too.
    as_sets = lambda batches: {frozenset(b) for b in batches}  # noqa: E731
    assert as_sets(order(0, 0)) != as_sets(order(0, 1))


def test_bucketed_batches_waste_far_less_padding_than_random_ones():
    sizes = skewed_lengths(4000, seed=2)
    bucketed = LengthBucketSampler(sizes, 32, shuffle=True, bucket=True, seed=0)
    random = LengthBucketSampler(sizes, 32, shuffle=True, bucket=False, seed=0)
    waste_bucketed, waste_random = padding_waste(list(bucketed), sizes), padding_waste(list(random), sizes)
    assert waste_random > 0.3  # the data really is skewed
    assert waste_bucketed < waste_random / 4
    # Bucketing must not make training order predictable: the first batches are not all short.
    first = [sizes[b].mean() for b in list(bucketed)[:20]]
    assert np.std(first) > 0.2 * np.mean(first)


def test_no_shuffle_sorts_by_length_longest_first():
    sizes = skewed_lengths(200, seed=4)
    order = list(itertools.chain.from_iterable(LengthBucketSampler(sizes, 9, shuffle=False)))
    assert list(sizes[order]) == sorted(sizes, reverse=True)
    # ...and is the same every epoch.
    sampler = LengthBucketSampler(sizes, 9, shuffle=False)
    sampler.set_epoch(5)
    assert list(itertools.chain.from_iterable(sampler)) == order


def test_no_shuffle_no_bucket_keeps_input_order():
    batches = list(LengthBucketSampler(skewed_lengths(10), 4, shuffle=False, bucket=False))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.fixture(scope="module")
def tokenizer_preprocessor():
    return load_backbone("tiny-bert", max_length=64).preprocessor


TEXTS = ["a", "short one", "a somewhat longer sentence here", "mid length text", "x y", "the longest text of them all by far"]


def test_collate_pads_each_batch_to_its_own_longest_example(tokenizer_preprocessor):
    pre = tokenizer_preprocessor
    targets = np.arange(len(TEXTS), dtype=np.int64)
    dataset = EncodedDataset.build(pre, TEXTS, targets)
    lengths = [len(e) for e in dataset.encoded]
    assert list(dataset.sizes) == lengths
    loader = make_loader(dataset, make_collate(pre), batch_size=2, shuffle=False, bucket=True, seed=0)
    seen = []
    for batch in loader:
        rows = batch["labels"].tolist()
        seen += rows
        width = batch["input_ids"].shape[1]
        assert width == max(lengths[i] for i in rows)
        assert batch["attention_mask"].sum(1).tolist() == [lengths[i] for i in rows]
        for r, i in enumerate(rows):
            assert batch["input_ids"][r, : lengths[i]].tolist() == dataset.encoded[i]
            assert (batch["input_ids"][r, lengths[i]:] == pre.pad_id).all()
    assert sorted(seen) == list(range(len(TEXTS)))
    widths = {b["input_ids"].shape[1] for b in make_loader(dataset, make_collate(pre), 2, False, True, 0)}
    assert len(widths) > 1  # padding is per batch, not to one global width


def test_collate_without_targets_has_no_labels(tokenizer_preprocessor):
    dataset = EncodedDataset.build(tokenizer_preprocessor, TEXTS[:3], None)
    batch = make_collate(tokenizer_preprocessor)([dataset[i] for i in range(3)])
    assert set(batch) == {"input_ids", "attention_mask"}


def test_truncation_to_max_length():
    pre = load_backbone("tiny-bert", max_length=8).preprocessor
    assert max(len(ids) for ids in pre.encode(["a very long text " * 20])) == 8


def test_feature_collate_stacks_vectors_and_labels():
    pairs = [(np.full(4, i, dtype=np.float32), {"labels": i % 2}) for i in range(3)]
    batch = feature_collate(pairs)
    assert batch["features"].shape == (3, 4) and batch["labels"].tolist() == [0, 1, 0]


def test_extras_travel_with_their_examples_through_bucketed_batches(tokenizer_preprocessor):
    targets = np.arange(len(TEXTS)) % 2
    teacher = np.arange(len(TEXTS) * 2, dtype=np.float32).reshape(-1, 2)
    dataset = EncodedDataset.build(tokenizer_preprocessor, TEXTS, targets, extras={"teacher_logits": teacher})
    collate = make_collate(tokenizer_preprocessor)
    for indices in LengthBucketSampler(dataset.sizes, 3, shuffle=True, seed=1):
        batch = collate([dataset[i] for i in indices])
        np.testing.assert_array_equal(batch["teacher_logits"].numpy(), teacher[indices])
        np.testing.assert_array_equal(batch["labels"].numpy(), targets[indices])
    with pytest.raises(ValueError, match="teacher_logits"):
        EncodedDataset.build(tokenizer_preprocessor, TEXTS, targets, extras={"teacher_logits": teacher[:2]})


def test_run_batches_returns_rows_in_input_order(tokenizer_preprocessor):
    dataset = EncodedDataset.build(tokenizer_preprocessor, TEXTS, None)
    # fn returns each row's true length: after length sorting the rows must come back in input order.
    out = run_batches(lambda b: b["attention_mask"].sum(1, keepdim=True).float(), dataset,
                      make_collate(tokenizer_preprocessor), batch_size=4)
    np.testing.assert_array_equal(out[:, 0], dataset.sizes)
