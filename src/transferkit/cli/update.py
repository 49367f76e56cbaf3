"""`transferkit update --model DIR --data NEW --out DIR [--method replay]`: a new model version.

Prints the forgetting ledger (accuracy of every version on every data batch) and whether the
new version may be promoted: not when its backward transfer is worse than --max-forgetting.
"""

from __future__ import annotations

import argparse

from ..continual.update import METHODS
from .fit import add_config_flags

NOT_FOR_UPDATE = ("data", "train", "val", "test", "model", "strategy", "eval_data", "skip_before", "resume", "out")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("update", help="re-fine-tune a model on new data, measuring forgetting")
    parser.add_argument("--model", required=True, help="the current version's artifact")
    parser.add_argument("--data", required=True, help="the new labelled data (file, image folder or builtin:NAME)")
    parser.add_argument("--out", required=True, help="run directory of the new version (its artifact goes to OUT/model)")
    parser.add_argument("--method", choices=METHODS, default="replay", help="how to fight forgetting (naive: not at all)")
    parser.add_argument("--max-forgetting", type=float, default=0.02,
                        help="largest allowed drop of mean accuracy on earlier batches (0.02 = 2 points)")
    parser.add_argument("--replay-size", type=int, default=500, help="stored examples per batch for replay / EWC")
    parser.add_argument("--penalty", type=float, default=0.0, help="l2sp α or ewc λ (0: 0.01 / 5000)")
    add_config_flags(parser, exclude=NOT_FOR_UPDATE)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..continual.update import UpdateOptions, update

    options = UpdateOptions(method=args.method, max_forgetting=args.max_forgetting, replay_size=args.replay_size,
                            penalty=args.penalty)
    own = ("run", "command", "model", "data", "out", "method", "max_forgetting", "replay_size", "penalty")
    result = update(args.model, args.data, args.out, options, **{k: v for k, v in vars(args).items() if k not in own})
    print(result.ledger.table())
    print(f"\n{result.version} (parent {result.parent}) written to {result.model_dir}")
    print(("promotable: " if result.promotable else "NOT promotable: ") + result.reason)
    return 0
