"""`transferkit rank --models A,B[,dir:...] --data ...`: score candidate source models on the task
without fine-tuning them (LogME, H-score, k-NN; LEEP and NCE where the model has a source head).

Writes ranking.json, report.md and report.html to --out and prints the ranking table.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..config import FitConfig
from .fit import add_config_flags

# The FitConfig fields that decide the ranking sample and the features; auto takes all of them.
DATA_FIELDS = ("data", "train", "val", "test", "text_column", "label_column", "val_fraction", "test_fraction",
               "seed", "max_length", "image_size", "eval_batch_size", "quiet")


def add_selection_flags(parser: argparse.ArgumentParser) -> None:
    """--models and --sample, shared by rank and auto."""
    parser.add_argument("--models", required=True, metavar="A,B,...",
                        help="candidates: zoo names, dir:PATH or hf:ORG/NAME, each optionally @N "
                             "(image size or max token length for that candidate), comma-separated")
    parser.add_argument("--sample", type=int, default=1000,
                        help="score on a stratified sample of this many training examples (0: all; default 1000)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rank", help="rank candidate source models by transferability scores, without fine-tuning")
    add_selection_flags(parser)
    add_config_flags(parser, exclude=tuple(f.name for f in dataclasses.fields(FitConfig) if f.name not in DATA_FIELDS))
    parser.add_argument("--out", help="where to write ranking.json and the report (default runs/<time>-rank)")
    parser.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    parser.set_defaults(run=run)


def options(args: argparse.Namespace, exclude: tuple[str, ...]) -> dict:
    """The FitConfig fields given on the command line (unset flags are absent)."""
    return {k: v for k, v in vars(args).items() if k not in ("run", "command", "models", "sample", *exclude)}


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A plain aligned text table on stdout."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def run(args: argparse.Namespace) -> int:
    from ..evaluation.rank_report import ranking_rows
    from ..rank.select import rank_models
    from ..runs import default_run_dir

    out = Path(args.out) if args.out else default_run_dir("rank", "")
    ranking = rank_models(args.models, sample=args.sample or None, out=out, overwrite=args.overwrite,
                          **options(args, ("out", "overwrite")))
    print(f"{ranking.data}: {ranking.sample} training examples, {len(ranking.label_names)} classes")
    print_table(*ranking_rows(ranking))
    for note in ranking.notes:
        print(f"note: {note}")
    print(f"ranking: {out / 'ranking.json'}   report: {out / 'report.html'}")
    return 0
