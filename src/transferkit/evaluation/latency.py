"""CPU inference speed of a model, end to end (preprocessing included): what a deployment sees."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..inference import model_logits
from ..zoo.base import Preprocessor


def measure_latency(model: nn.Module, preprocessor: Preprocessor, items: Sequence[Any], single: int = 32,
                    batch_size: int = 32, batches: int = 2) -> dict[str, Any]:
    """Median milliseconds per example at batch 1 (over `single` examples) and examples/s at
    `batch_size` (over `batches` batches), after one warm-up call; items are reused cyclically."""
    if not items:
        raise ValueError("need at least one example to time")
    pool = list(items)

    def take(n: int) -> list[Any]:
        return [pool[i % len(pool)] for i in range(n)]

    model_logits(model, preprocessor, take(1), batch_size=1)  # warm-up: lazy initialisation, caches
    times = []
    for item in take(single):
        started = time.perf_counter()
        model_logits(model, preprocessor, [item], batch_size=1)
        times.append(time.perf_counter() - started)
    batched = take(batch_size * batches)
    started = time.perf_counter()
    model_logits(model, preprocessor, batched, batch_size=batch_size)
    seconds = time.perf_counter() - started
    return {"ms_per_example_batch1": 1000 * statistics.median(times), f"examples_per_s_batch{batch_size}": len(batched) / seconds,
            "threads": torch.get_num_threads(), "n_timed": {"batch1": single, f"batch{batch_size}": len(batched)}}
