"""`transferkit bench-peak`: this machine's fp32 and bf16 matmul peak, measured once and cached.

`fit` reports the share of this peak its training steps reach (train/throughput.py); run this
on an idle machine (and with --refresh after a change of machine or threads) so the reference
is not measured while other work shares the cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench-peak", help="measure (once) and show this machine's fp32/bf16 matmul peak")
    parser.add_argument("--refresh", action="store_true", help="measure again even if a figure is cached")
    parser.add_argument("--threads", type=int, help="intra-op threads to measure with (default: as fit uses)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..hardware import cached_peak, run_threads

    with run_threads(args.threads):
        peak = cached_peak(refresh=args.refresh)
    if args.json:
        print(json.dumps(dataclasses.asdict(peak), indent=2))
        return 0
    print(f"cpu: {peak.cpu} ({peak.threads} thread(s), torch {peak.torch}, measured {peak.measured})")
    print(f"fp32 matmul peak: {peak.fp32_gflops:.1f} GFLOP/s ({peak.matrix['fp32']}² matrices)")
    native = "native" if peak.native_bf16 else "NOT native: emulated, use fp32"
    print(f"bf16 matmul peak: {peak.bf16_gflops:.1f} GFLOP/s ({peak.matrix['bf16']}² matrices; bf16 {native})")
    return 0
