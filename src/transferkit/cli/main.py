"""`transferkit COMMAND ...`: dispatch, and the one place user errors become one-line messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import TransferkitError
from . import (adapt, assets, auto, bench_peak, compare, datasets, demo, distill, evaluate, export, fit, merge, models,
               predict, rank, serve, update, versions)

COMMANDS = (fit, predict, evaluate, models, datasets, demo, assets, adapt, rank, auto, distill, serve, versions, export,
            compare, merge, update, bench_peak)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transferkit", description="Transfer learning: adapt, prove, ship.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except TransferkitError as exc:
        print(f"transferkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
