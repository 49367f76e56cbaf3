"""`transferkit auto --models A,B,... --data ... [--top-k K] [--strategy S] --out RUN`: rank the
candidates, fine-tune the top k, report how well each score predicted the accuracy reached, and
keep the best model's artifact in RUN/model.

Every `fit` flag (--strategy, --epochs, --train-size, --lr, ...) applies to each fine-tuning.
"""

from __future__ import annotations

import argparse

from .fit import add_config_flags
from .rank import add_selection_flags, options, print_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("auto", help="rank candidate models, fine-tune the top k, check the ranking, keep the best")
    add_selection_flags(parser)
    parser.add_argument("--top-k", type=int, default=3, help="fine-tune this many of the best-ranked (>= 2; default 3)")
    parser.add_argument("--select-by", default="logme",
                        help="the score that picks the top k: logme (default), hscore, knn, or leep/nce (vision)")
    add_config_flags(parser, exclude=("model", "task", "out", "overwrite", "resume"))
    parser.add_argument("--out", required=True, help="run directory: ranking, one run per candidate, model/ (the best)")
    parser.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.rank_report import auto_sections, ranking_rows
    from ..rank.auto import auto

    result = auto(args.models, out=args.out, top_k=args.top_k, select_by=args.select_by, sample=args.sample or None,
                  overwrite=args.overwrite, **options(args, ("out", "overwrite", "top_k", "select_by")))
    print_table(*ranking_rows(result.ranking))
    for heading, header, rows in auto_sections(result.summary):
        print(f"\n{heading}")
        print_table(header, rows)
    print(f"\nbest: {result.best} (by validation accuracy)   model: {result.model_dir}   "
          f"report: {result.run_dir / 'report.html'}")
    return 0
