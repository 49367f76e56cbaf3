"""Adaptation strategies side by side: accuracy, trainable parameters, time, memory, artifact size.

Two `transferkit compare` runs, same data, split and seed for every strategy of a run:

- text:  minilm-l6 on builtin:vader-movie (movie-review sentiment), --text-train-size examples (4,000:
         the foundation benchmark's split and training set);
- image: efficientnet-lite0 on builtin:mnist-5k at --image-size pixels, --image-train-size examples.

Strategies: linear-probe, freeze-bottom:4, full, lora, ia3, bitfit (the issue's list) and, for
text, prefix tuning; all with the library defaults (lr 5e-5 for the backbone, × each PEFT
method's lr_scale; head 1e-3; batch 16; early stopping on validation accuracy, patience 2).

    python benchmarks/strategies.py [--which text,image] [--epochs 3] [--seeds 1] [--out runs/bench-strategies]

Prints each table and writes OUT/{text,image}/compare.json and report.html.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transferkit.comparison import compare
from transferkit.evaluation.strategy_report import HEADER, table_rows

STRATEGIES = ["linear-probe", "freeze-bottom:4", "full", "lora", "ia3", "bitfit"]


def settings(args: argparse.Namespace) -> dict[str, dict]:
    return {
        "text": {"strategies": STRATEGIES + ["prefix"], "data": "builtin:vader-movie", "model": "minilm-l6",
                 "train_size": args.text_train_size},
        "image": {"strategies": STRATEGIES, "data": "builtin:mnist-5k", "model": "efficientnet-lite0",
                  "train_size": args.image_train_size, "image_size": args.image_size},
    }


def print_table(title: str, summary: list[dict]) -> None:
    rows = [HEADER, *table_rows(summary)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    print(f"\n{title}")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--which", default="text,image", help="text, image or both")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--text-train-size", type=int, default=4000, help="the foundation benchmark's 4,000")
    parser.add_argument("--image-train-size", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default="runs/bench-strategies")
    parser.add_argument("--resume", action="store_true", help="keep the runs already recorded in OUT")
    args = parser.parse_args()
    for name in args.which.split(","):
        config = dict(settings(args)[name])
        strategies = config.pop("strategies")
        started = time.perf_counter()
        result = compare(strategies, args.seeds, Path(args.out) / name, overwrite=not args.resume, resume=args.resume,
                         epochs=args.epochs, quiet=True, **config)
        print_table(f"{name}: {config['model']} on {config['data']}, train_size {config['train_size']}, "
                    f"{args.epochs} epochs, {args.seeds} seed(s); {time.perf_counter() - started:.0f} s in all",
                    result.summary)
        print(json.dumps({"which": name, "summary": result.summary}))


if __name__ == "__main__":
    main()
