"""`transferkit compare --strategies linear-probe,freeze-bottom:4,full,lora,ia3,bitfit --data ... --seeds N`.

Every strategy runs on the same data, split and seed, each in its own process; OUT/compare.json
holds one record per strategy × seed and OUT/report.html the table and the accuracy vs
trainable-parameters plot. Every `fit` flag (model, data, epochs, lr, train size, ...) applies to
all runs.
"""

from __future__ import annotations

import argparse

from .fit import add_config_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..comparison import NOT_FOR_COMPARE

    parser = sub.add_parser("compare", help="run several strategies on the same data and split; one report")
    parser.add_argument("--strategies", required=True,
                        help="comma-separated strategy specs, e.g. linear-probe,freeze-bottom:4,full,lora:r=4,alpha=8")
    parser.add_argument("--seeds", type=int, default=1, help="repeats, seeds --seed .. --seed+N-1 (mean ± std)")
    parser.add_argument("--out", default="runs/compare", help="output directory (default runs/compare)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing comparison in --out")
    parser.add_argument("--resume", action="store_true", help="keep the runs compare.json already holds")
    add_config_flags(parser, exclude=NOT_FOR_COMPARE)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..comparison import compare
    from ..evaluation.strategy_report import HEADER, table_rows

    own = ("strategies", "seeds", "out", "overwrite", "resume", "run", "command")
    options = {k: v for k, v in vars(args).items() if k not in own}
    result = compare(args.strategies, args.seeds, args.out, overwrite=args.overwrite, resume=args.resume, **options)
    rows = [HEADER, *table_rows(result.summary)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"report: {result.out / 'report.html'} (records: {result.out / 'compare.json'})")
    return 0
