"""How much of the machine a training step used: useful work per second against the measured peak.

Useful units are non-padding tokens (text) or images. The arithmetic of one training step —
forward and backward, as the strategy runs them (frozen parts have no weight gradients, a
cached bottom no forward) — is counted once, after training, on the first training batch the
strategy's sampler draws, by PyTorch's `torch.utils.flop_counter.FlopCounterMode` (matmuls,
convolutions, attention), and divided by that batch's padded positions: FLOPs per position.
Useful FLOP/s = FLOPs per position × useful units per second of step time (forward, backward and
optimizer step; validation and checkpointing excluded), per process, and the share of peak
divides that by the matmul peak one process measured with its threads for the precision used
(hardware.py). Padding positions are not counted as useful, so the share falls when batches pad
a lot. Without a measured peak (`transferkit bench-peak`), the share is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..hardware import Peak, autocast


def step_flops(step: Callable[[dict], dict], model: torch.nn.Module, loader: Iterable[dict],
               precision: str) -> tuple[float, int]:
    """(FLOPs of one forward + backward, padded positions) on the first batch `loader` yields —
    a training batch as the strategy draws them (domain-balanced, say).

    Meant for after training: the weights, the gradients (cleared) and the RNG state (forked) end
    as they were; a strategy's own step counters may advance."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(), FlopCounterMode(display=False) as counter:
        batch = next(iter(loader))
        positions = int(batch["attention_mask"].numel()) if "attention_mask" in batch else len(batch["labels"])
        with autocast(precision):
            loss = step(batch)["loss"]
        if loss.requires_grad:
            loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops()), positions


def throughput_record(*, examples: int, units: int, positions: int, seconds: float, step_seconds: float,
                      flops: float, flop_positions: int, peak: Peak | None, precision: str, threads: int,
                      processes: int, unit: str) -> dict[str, Any]:
    """The throughput block of metrics.json: counts and rates over all `processes`; the FLOP rate
    and the share of peak per process (each process runs its own steps on its own threads)."""
    seconds, step_seconds = max(seconds, 1e-9), max(step_seconds, 1e-9)
    flops_per_position = flops / max(flop_positions, 1)
    useful_gflops = flops_per_position * units / processes / step_seconds / 1e9
    record = {
        "unit": unit, "examples": examples, f"useful_{unit}": units,
        "examples_per_s": examples / seconds, f"useful_{unit}_per_s": units / seconds,
        "step_seconds": step_seconds, f"useful_{unit}_per_step_s": units / step_seconds,
        "padding_share": 1.0 - units / positions if positions else 0.0,
        "flops_per_position": flops_per_position, "useful_gflops_per_s": useful_gflops,
        "precision": precision, "threads": threads, "processes": processes,
    }
    if peak is not None:
        record.update({"peak_gflops": peak.for_precision(precision), "peak_share": useful_gflops / peak.for_precision(precision),
                       "peak": {"fp32_gflops": peak.fp32_gflops, "bf16_gflops": peak.bf16_gflops,
                                "native_bf16": peak.native_bf16, "cpu": peak.cpu}})
    return record
