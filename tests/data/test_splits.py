"""prepare_task_data: stratified, seeded, disjoint splits; subsampling; user-given splits; and
the label checks (unseen labels, one class, non-numeric regression targets)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from transferkit.data import prepare_task_data
from transferkit.errors import DataError

# Imbalanced three-class data: 120 / 60 / 20 rows.
CLASS_SIZES = {"a": 120, "b": 60, "c": 20}


def write_rows(path: Path, rows: list[tuple[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("text", "label"))
        writer.writerows(rows)
    return path


@pytest.fixture
def imbalanced_csv(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    labels = [label for label, n in CLASS_SIZES.items() for _ in range(n)]
    rng.shuffle(labels)
    return write_rows(tmp_path / "imbalanced.csv", [(f"text number {i}", label) for i, label in enumerate(labels)])


def class_counts(task, split) -> Counter:
    part = getattr(task, split)
    return Counter(task.label_names[t] for t in part.targets)


def assert_proportional(task, split, sizes: dict[str, int]) -> None:
    """Each class within ±1 example of its share of the whole data, scaled to the split size."""
    total = sum(sizes.values())
    counts = class_counts(task, split)
    n = len(getattr(task, split))
    for label, size in sizes.items():
        expected = n * size / total
        assert abs(counts[label] - expected) <= 1, f"{split}: {label} has {counts[label]}, expected ~{expected:.1f}"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_stratified_splits(imbalanced_csv, seed):
    task = prepare_task_data(str(imbalanced_csv), seed=seed, val_fraction=0.1, test_fraction=0.2)
    assert (len(task.train), len(task.val), len(task.test)) == (140, 20, 40)
    for split in ("train", "val", "test"):
        assert_proportional(task, split, CLASS_SIZES)


@pytest.mark.parametrize("seed", [0, 5])
def test_splits_are_disjoint_and_cover_every_row(imbalanced_csv, seed):
    task = prepare_task_data(str(imbalanced_csv), seed=seed)
    ids = [set(task.train.ids), set(task.val.ids), set(task.test.ids)]
    assert sum(map(len, ids)) == sum(CLASS_SIZES.values())
    assert set().union(*ids) == {str(line) for line in range(2, 2 + sum(CLASS_SIZES.values()))}
    # Items and targets stay aligned with their ids through the split.
    assert all(text == f"text number {int(i) - 2}" for text, i in zip(task.test.items, task.test.ids))


def test_same_seed_same_split_different_seed_different_split(imbalanced_csv):
    first, again, other = (prepare_task_data(str(imbalanced_csv), seed=s) for s in (7, 7, 8))
    for split in ("train", "val", "test"):
        assert getattr(first, split).ids == getattr(again, split).ids
        np.testing.assert_array_equal(getattr(first, split).targets, getattr(again, split).targets)
    assert set(first.test.ids) != set(other.test.ids)
    assert set(first.val.ids) != set(other.val.ids)


@pytest.mark.parametrize("train_size", [30, 70])
def test_train_size_subsample_keeps_proportions(imbalanced_csv, train_size):
    full = prepare_task_data(str(imbalanced_csv), seed=0)
    task = prepare_task_data(str(imbalanced_csv), seed=0, train_size=train_size)
    assert len(task.train) == train_size
    assert set(task.train.ids) <= set(full.train.ids)
    # val and test are untouched by the subsample: comparisons stay on the same test set.
    assert task.test.ids == full.test.ids and task.val.ids == full.val.ids
    assert_proportional(task, "train", CLASS_SIZES)


def test_train_size_larger_than_data_keeps_everything(imbalanced_csv):
    full = prepare_task_data(str(imbalanced_csv), seed=0)
    assert prepare_task_data(str(imbalanced_csv), seed=0, train_size=10_000).train.ids == full.train.ids


def balanced_rows(n: int, offset: int = 0) -> list[tuple[str, str]]:
    return [(f"row {offset + i}", ("pos", "neg")[i % 2]) for i in range(n)]


def test_separate_train_val_test_files_are_used_as_given(tmp_path):
    train = write_rows(tmp_path / "train.csv", balanced_rows(30))
    val = write_rows(tmp_path / "val.csv", balanced_rows(8, 100))
    test = write_rows(tmp_path / "test.csv", balanced_rows(12, 200))
    task = prepare_task_data(train=str(train), val=str(val), test=str(test))
    assert (len(task.train), len(task.val), len(task.test)) == (30, 8, 12)
    assert task.val.items == [text for text, _ in balanced_rows(8, 100)]
    assert task.test.items == [text for text, _ in balanced_rows(12, 200)]
    assert task.label_names == ["neg", "pos"]


def test_missing_val_is_held_out_of_train(tmp_path):
    train = write_rows(tmp_path / "train.csv", balanced_rows(40))
    test = write_rows(tmp_path / "test.csv", balanced_rows(10, 100))
    task = prepare_task_data(train=str(train), test=str(test), val_fraction=0.25)
    assert len(task.test) == 10 and len(task.val) == 10 and len(task.train) == 30
    assert not set(task.train.ids) & set(task.val.ids)
    assert Counter(task.val.targets.tolist()) == {0: 5, 1: 5}


@pytest.mark.parametrize("where", ["test", "val"])
def test_labels_never_seen_in_training_are_named(tmp_path, where):
    train = write_rows(tmp_path / "train.csv", balanced_rows(20))
    odd = write_rows(tmp_path / f"{where}.csv", balanced_rows(4, 50) + [("x", "neutral"), ("y", "mixed")])
    other = write_rows(tmp_path / "other.csv", balanced_rows(4, 80))
    files = {"val": str(other), "test": str(other), where: str(odd)}
    with pytest.raises(DataError) as info:
        prepare_task_data(train=str(train), **files)
    message = str(info.value)
    assert str(odd) in message and "'mixed'" in message and "'neutral'" in message
    assert "'pos'" not in message.split("(known")[0]  # only the unknown labels are listed as unknown


def test_single_class_is_refused(tmp_path):
    path = write_rows(tmp_path / "one.csv", [(f"t{i}", "spam") for i in range(20)])
    with pytest.raises(DataError, match=r"single class \('spam'\)"):
        prepare_task_data(str(path))


def test_regression_targets_are_floats(tmp_path):
    values = [f"{v:.2f}" for v in np.linspace(-3, 3, 40)] + ["0", "1e-3"]
    path = write_rows(tmp_path / "ratings.csv", [(f"t{i}", v) for i, v in enumerate(values)])
    task = prepare_task_data(str(path), task="regression", seed=0)
    assert task.label_names == [] and task.num_outputs == 1
    by_id = {str(line): float(v) for line, v in enumerate(values, start=2)}
    for split in (task.train, task.val, task.test):
        assert split.targets.dtype == np.float32
        np.testing.assert_allclose(split.targets, [by_id[i] for i in split.ids], rtol=1e-6)
    assert sum(map(len, (task.train, task.val, task.test))) == len(values)


@pytest.mark.parametrize("bad", ["great", "nan", "inf"])
def test_regression_non_numeric_label_names_the_row(tmp_path, bad):
    rows = [(f"t{i}", str(i / 10)) for i in range(20)]
    rows[6] = ("t6", bad)  # line 8 of the file (header is line 1)
    path = write_rows(tmp_path / "ratings.csv", rows)
    with pytest.raises(DataError) as info:
        prepare_task_data(str(path), task="regression")
    message = str(info.value)
    assert str(path) in message and re.search(r"row 8\b", message) and repr(bad) in message


def test_too_few_examples_to_split(tmp_path):
    path = write_rows(tmp_path / "tiny.csv", [("a", "x"), ("b", "y")])
    with pytest.raises(DataError, match="too few to split"):
        prepare_task_data(str(path))


def test_scarce_class_is_named_instead_of_vanishing_from_train(tmp_path):
    rows = [(f"text {i}", "common" if i % 10 else "other") for i in range(40)] + [("lonely text", "rare")]
    path = write_rows(tmp_path / "scarce.csv", rows)
    with pytest.raises(DataError, match=r"'rare' \(1\)"):
        prepare_task_data(str(path))
