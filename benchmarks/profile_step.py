"""Where a training step's time goes: torch.profiler over transferkit's own step on MiniLM.

The step of `transferkit fit --strategy full` (minilm-l6, batch 16, length-bucketed batches of
VADER movie snippets, the precision `fit` would choose, fused AdamW, gradient clipping at 1.0),
timed for --steps steps after a warm-up, then profiled for a few more. Prints the median step
time, the FLOPs of a step (torch.utils.flop_counter) and the share of this machine's matmul peak
it reaches on useful (non-padding) tokens, and the profile's self-CPU time grouped into dense
matmuls, attention, the embedding gradient, the optimizer, gradient clipping, and the rest
(elementwise ops: GELU, dropout, LayerNorm, adds): what bounds the step.

    python benchmarks/profile_step.py [--steps 30] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from transferkit.config import FitConfig
from transferkit.data import prepare_task_data
from transferkit.data.batching import EncodedDataset, make_collate, make_loader
from transferkit.hardware import autocast, cached_peak, resolve_precision, thread_count
from transferkit.heads import make_head
from transferkit.model import TransferModel
from transferkit.strategies import OptimConfig, parse_strategy
from transferkit.train.loop import training_step
from transferkit.train.optim import build_optimizer
from transferkit.train.throughput import step_flops
from transferkit.zoo import load_backbone

GROUPS = (  # (group, substrings of aten op names), first match wins
    ("dense matmul (mm/addmm/bmm)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("attention (SDPA)", ("scaled_dot_product",)),
    ("embedding gradient", ("embedding_dense_backward", "embedding_backward", "index_add", "aten::embedding")),
    ("optimizer (fused AdamW)", ("_fused_adamw", "adamw")),
    ("gradient clipping", ("linalg_vector_norm", "_foreach_norm", "_foreach_mul")),
)


def batches(args: argparse.Namespace, backbone, cfg: FitConfig):
    data = prepare_task_data("builtin:vader-movie", train_size=args.train_size, seed=0)
    pre = backbone.preprocessor
    dataset = EncodedDataset.build(pre, data.train.items, data.train.targets)
    loader = make_loader(dataset, make_collate(pre), cfg.batch_size, shuffle=True, bucket=True, seed=0)
    return data, [batch for batch in loader]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--profiled-steps", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    threads = thread_count()
    torch.set_num_threads(threads)
    precision = resolve_precision(args.precision)
    cfg = FitConfig(data="builtin:vader-movie", model="minilm-l6", strategy="full")
    backbone = load_backbone("minilm-l6")
    data, all_batches = batches(args, backbone, cfg)
    torch.manual_seed(0)
    model = TransferModel(backbone, make_head("classification", backbone.feature_dim, 2, cfg.dropout, data.train.targets))
    strategy = parse_strategy("full")
    strategy.prepare(model)
    optimizer = build_optimizer(strategy.param_groups(model, OptimConfig.from_config(cfg)), cfg)
    model.train()

    def step(batch) -> None:
        with autocast(precision):
            out = training_step(model, model, strategy, batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rng = np.random.default_rng(0)
    chosen = [all_batches[i] for i in rng.choice(len(all_batches), args.steps + args.profiled_steps + 3, replace=False)]
    for batch in chosen[:3]:
        step(batch)
    times, useful, positions = [], 0, 0
    for batch in chosen[3 : 3 + args.steps]:
        started = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - started)
        useful += int(batch["attention_mask"].sum())
        positions += int(batch["attention_mask"].numel())
    flops, flop_positions = step_flops(lambda b: training_step(model, model, strategy, b), model, [chosen[3]], precision)
    model.train()
    peak = cached_peak().for_precision(precision)
    useful_gflops = flops / flop_positions * useful / sum(times) / 1e9
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in chosen[3 + args.steps :]:
            step(batch)
    grouped: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        name = event.key
        group = next((g for g, keys in GROUPS if any(k in name for k in keys)), None)
        if group is None and name.startswith("aten::"):
            group = "other aten ops (elementwise: GELU, dropout, LayerNorm, adds, copies)"
        if group is not None:
            grouped[group] += event.self_cpu_time_total / 1e3
    total = sum(grouped.values())
    print(f"minilm-l6, batch {cfg.batch_size}, {precision}, {threads} threads: median step "
          f"{1000 * statistics.median(times):.1f} ms over {args.steps} steps; {useful / args.steps:.0f} useful tokens "
          f"per step, padding {100 * (1 - useful / positions):.1f}%")
    print(f"{flops / 1e9:.1f} GFLOP per step ({flops / flop_positions / 1e6:.1f} MFLOP per position); useful "
          f"{useful_gflops:.1f} GFLOP/s = {100 * useful_gflops / peak:.1f}% of this machine's {precision} matmul peak "
          f"({peak:.1f} GFLOP/s)")
    print(f"\nself CPU time over {args.profiled_steps} profiled steps ({total:.0f} ms):")
    for group, ms in sorted(grouped.items(), key=lambda kv: -kv[1]):
        print(f"  {group:<72} {ms:8.1f} ms  {100 * ms / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
