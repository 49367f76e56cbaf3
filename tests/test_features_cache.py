"""The frozen-feature disk cache: hits return the same arrays without running the backbone, and
any change of items, preprocessing or weights is a miss."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from PIL import Image

import transferkit.features as features_module
from transferkit.features import cache_key, cached_features
from transferkit.inference import backbone_features
from transferkit.zoo import load_backbone

TEXTS = ["a good film", "dull and awful", "it was fine I suppose", "x"]


@pytest.fixture(scope="module")
def tiny_bert():
    return load_backbone("tiny-bert", max_length=32)  # built in the default cache, before the tmp home


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """A fresh cache home, and a counter of real backbone computations."""
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))
    calls = []

    def counting(backbone, items, batch_size=64):
        calls.append(list(items))
        return backbone_features(backbone, items, batch_size)

    monkeypatch.setattr(features_module, "backbone_features", counting)
    return calls


def cache_files(tmp_path):
    folder = tmp_path / "home" / "features"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_second_call_hits_the_cache(tiny_bert, counted, tmp_path):
    first = cached_features(tiny_bert, TEXTS)
    second = cached_features(tiny_bert, list(TEXTS))
    assert len(counted) == 1
    assert first.shape == (len(TEXTS), tiny_bert.feature_dim) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    names = cache_files(tmp_path)
    assert len(names) == 1 and names[0].endswith(".safetensors")  # no temp files left


def test_cached_features_equal_fresh_ones(tiny_bert, counted):
    cached_features(tiny_bert, TEXTS)
    from_cache = cached_features(tiny_bert, TEXTS)
    np.testing.assert_allclose(from_cache, backbone_features(tiny_bert, TEXTS), atol=1e-6, rtol=0)
    # Batch size does not change the features, so it rightly is not part of the key.
    np.testing.assert_allclose(backbone_features(tiny_bert, TEXTS, batch_size=1), from_cache, atol=1e-5, rtol=0)


def test_use_cache_false_neither_reads_nor_writes(tiny_bert, counted, tmp_path):
    cached_features(tiny_bert, TEXTS, use_cache=False)
    cached_features(tiny_bert, TEXTS, use_cache=False)
    assert len(counted) == 2 and cache_files(tmp_path) == []


def change_items(backbone):
    return backbone, TEXTS[:-1] + ["y"]


def reorder_items(backbone):
    return backbone, TEXTS[::-1]


def change_max_length(backbone):
    return load_backbone("tiny-bert", max_length=8), TEXTS


def perturb(backbone) -> None:
    # Not a constant shift: LayerNorm right after the embeddings would cancel that.
    with torch.no_grad():
        backbone.encoder.embeddings.word_embeddings.weight[5] += torch.linspace(-1, 1, backbone.feature_dim)


def change_weights_of_a_copy(backbone):
    other = copy.deepcopy(backbone)
    perturb(other)
    return other, TEXTS


def change_weights_in_place(backbone):
    # The same instance, fine-tuned after its features were cached (a hashed backbone is mutable).
    perturb(backbone)
    return backbone, TEXTS


def reload_other_weights(backbone):
    other = load_backbone("tiny-bert", max_length=32)
    perturb(other)
    backbone.load_state_dict(other.state_dict())
    return backbone, TEXTS


@pytest.mark.parametrize("change", [change_items, reorder_items, change_max_length, change_weights_of_a_copy,
                                    change_weights_in_place, reload_other_weights])
def test_any_change_is_a_cache_miss(counted, tmp_path, change):
    backbone = load_backbone("tiny-bert", max_length=32)
    base = cached_features(backbone, TEXTS)
    key = cache_key(backbone, TEXTS)
    other, items = change(backbone)
    assert cache_key(other, items) != key
    changed = cached_features(other, items)
    assert len(counted) == 2 and len(cache_files(tmp_path)) == 2
    np.testing.assert_allclose(changed, backbone_features(other, items), atol=1e-6, rtol=0)
    if change is not reorder_items:
        assert not np.allclose(changed, base)


def test_image_file_rewritten_in_place_is_a_miss(counted, tmp_path):
    backbone = load_backbone("tiny-cnn")
    paths = []
    for i, value in enumerate((10, 240)):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(path)
        paths.append(str(path))
    first = cached_features(backbone, paths)
    # Same path, new content (and a different size and mtime).
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[0])
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = cached_features(backbone, paths)
    assert len(counted) == 2
    assert not np.allclose(first[0], second[0]) and np.allclose(first[1], second[1], atol=1e-6)


def test_in_memory_arrays_key_on_content(counted):
    backbone = load_backbone("tiny-cnn")
    images = [np.zeros((8, 8), dtype=np.uint8), np.full((8, 8), 200, dtype=np.uint8)]
    cached_features(backbone, images)
    cached_features(backbone, [image.copy() for image in images])
    assert len(counted) == 1
    images[0][0, 0] = 1
    cached_features(backbone, images)
    assert len(counted) == 2
