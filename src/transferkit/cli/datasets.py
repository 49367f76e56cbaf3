"""`transferkit datasets`: the built-in example sets (use them as --data builtin:NAME)."""

from __future__ import annotations

import argparse

from ..data import BUILTINS


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("datasets", help="list the built-in datasets")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"{'name':<24}{'modality':<10}description")
    for entry in BUILTINS.values():
        print(f"{'builtin:' + entry.name:<24}{entry.modality:<10}{entry.description}")
    print("\nYour own data: a CSV/TSV/JSONL file (--text-column, --label-column) or an image folder with one sub-folder per class.")
    return 0
