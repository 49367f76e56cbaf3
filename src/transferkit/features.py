"""A disk cache of frozen-backbone features, so frozen computation happens once.

The key hashes the backbone's weights, its preprocessing settings and the exact items, so any
change of model, weights, tokenizer length, image size or data gives a new entry (invalidation
by construction). Entries are safetensors files written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .inference import backbone_features
from .io_utils import cache_home
from .zoo.base import Backbone


def items_digest(items: Sequence[Any]) -> str:
    digest = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray):
            digest.update(str(item.shape).encode())
            digest.update(np.ascontiguousarray(item).tobytes())
        elif isinstance(item, str) and os.path.isfile(item):
            stat = os.stat(item)
            digest.update(f"{item}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        else:
            digest.update(str(item).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def cache_key(backbone: Backbone, items: Sequence[Any]) -> str:
    settings = type(backbone.preprocessor).__name__ + json.dumps(_settings(backbone), sort_keys=True)
    raw = f"{source_hash(backbone)}|{settings}|{items_digest(items)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _settings(backbone: Backbone) -> dict[str, Any]:
    pre = backbone.preprocessor
    return {k: getattr(pre, k) for k in ("max_length", "image_size") if hasattr(pre, k)}


def source_hash(backbone: Backbone) -> str:
    """The weights hash, memoised on the instance (hashing 100M parameters takes a second).

    The memo is stamped with every tensor's storage and in-place version counter, so weights
    changed after hashing (training, load_state_dict, a modified deepcopy) are hashed again
    rather than served stale features from the cache.
    """
    stamp = tuple((t.data_ptr(), t._version) for t in backbone.state_dict().values())
    memo = getattr(backbone, "_weights_hash_memo", None)
    if memo is None or memo[0] != stamp:
        memo = (stamp, backbone.weights_hash())
        backbone._weights_hash_memo = memo
    return memo[1]


def cache_path(backbone: Backbone, items: Sequence[Any]) -> Path:
    """Where the features of `items` under `backbone` are (or will be) cached."""
    return cache_home() / "features" / f"{cache_key(backbone, items)}.safetensors"


def cached_features(backbone: Backbone, items: Sequence[Any], batch_size: int = 64, use_cache: bool = True) -> np.ndarray:
    """Features of `items`, from the cache when the same backbone has seen the same items."""
    if not use_cache:
        return backbone_features(backbone, items, batch_size)
    path = cache_path(backbone, items)
    if path.is_file():
        return load_file(str(path))["features"].numpy()
    features = backbone_features(backbone, items, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".features-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file({"features": torch.from_numpy(np.ascontiguousarray(features))}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return features
