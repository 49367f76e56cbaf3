"""Built-in example sets: known sizes and class balance, uint8 image ranges, regression targets,
and errors for unknown names and impossible tasks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.datasets import load_digits

from transferkit.data import BUILTINS, load_builtin, prepare_task_data
from transferkit.errors import DataError


@pytest.mark.slow
@pytest.mark.parametrize("name,size,counts", [
    ("vader-movie", 10_568, {"positive": 5_242, "negative": 5_326}),
    ("vader-amazon", 3_610, None),
])
def test_vader_classification_sizes(name, size, counts):
    data = load_builtin(name)
    assert len(data) == size
    assert set(data.labels) == {"positive", "negative"}
    if counts:
        assert Counter(data.labels) == counts
    assert data.modality == "text" and data.origin == f"builtin:{name}"
    assert all(isinstance(t, str) and t.strip() == t and t for t in data.items)
    assert len(set(data.ids)) == len(data)


@pytest.mark.slow
def test_vader_regression_keeps_zero_ratings_as_floats():
    classification = load_builtin("vader-movie")
    data = load_builtin("vader-movie", task="regression")
    assert all(isinstance(v, float) for v in data.labels)
    zeros = sum(v == 0.0 for v in data.labels)
    assert zeros > 0 and len(data) == len(classification) + zeros
    assert -4.0 <= min(data.labels) < 0 < max(data.labels) <= 4.0
    # The binary label is the sign of the rating, row for row.
    rating = dict(zip(data.ids, data.labels))
    assert all((rating[i] > 0) == (label == "positive") for i, label in zip(classification.ids, classification.labels))
    task = prepare_task_data("builtin:vader-movie", task="regression", seed=0)
    assert task.train.targets.dtype == np.float32 and (task.train.targets == 0).any()


def test_mnist_5k():
    data = load_builtin("mnist-5k")
    assert len(data) == 5_000
    assert Counter(data.labels) == {str(d): 500 for d in range(10)}
    images = np.stack(data.items)
    assert images.dtype == np.uint8 and images.shape == (5_000, 28, 28)
    assert images.max() == 255 and images.min() == 0


def test_digits_rescaled_to_uint8():
    data = load_builtin("digits")
    assert len(data) == 1_797
    images = np.stack(data.items)
    assert images.dtype == np.uint8 and images.shape == (1_797, 8, 8)
    assert images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(images, np.round(load_digits().images * 255 / 16).astype(np.uint8))
    assert data.labels[:10] == [str(d) for d in load_digits().target[:10]]


def test_unknown_builtin_lists_known_names():
    with pytest.raises(DataError) as info:
        load_builtin("imagenet")
    message = str(info.value)
    assert "builtin:imagenet" in message
    assert all(f"builtin:{name}" in message for name in BUILTINS)


@pytest.mark.parametrize("name", ["mnist-5k", "digits"])
def test_image_sets_refuse_regression(name):
    with pytest.raises(DataError, match=f"builtin:{name}.*classification"):
        load_builtin(name, task="regression")
    with pytest.raises(DataError, match=f"builtin:{name}"):
        prepare_task_data(f"builtin:{name}", task="regression")


def test_builtin_goes_through_the_normal_split():
    task = prepare_task_data("builtin:digits", seed=0, train_size=100)
    assert task.modality == "image" and task.label_names == [str(d) for d in range(10)]
    assert len(task.train) == 100 and len(task.test) == round(0.2 * 1_797)
    assert Counter(task.train.targets.tolist()) == {d: 10 for d in range(10)}
