"""`transferkit update`: a new model version, with its forgetting measured.

    transferkit update --registry DIR --data NEW [--from vN] [--method replay] [--out RUN]
    transferkit update --model ARTIFACT --data NEW [--method replay] [--out RUN]

With --registry, the promoted version (or --from) is re-fine-tuned, the result is registered as
the next version (parent: the one it came from) and promoted only when its backward transfer is
not worse than --max-forgetting. Otherwise it stays registered but unpromoted, the command says
so on stderr and the last line of stdout, and exits 0 (1 with --require-promotion). With --model
nothing is registered. Either way OUT holds model/, report.md/.html and ledger.json.
"""

from __future__ import annotations

import argparse
import sys

from ..continual.update import METHODS
from ..errors import ConfigError
from .fit import add_config_flags

NOT_FOR_UPDATE = ("data", "train", "val", "test", "model", "strategy", "eval_data", "skip_before", "resume", "out")
OWN = ("run", "command", "model", "registry", "from_version", "data", "out", "method", "max_forgetting", "replay_size",
       "penalty", "lwf_weight", "temperature", "require_promotion")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("update", help="re-fine-tune a model on new data, measuring forgetting")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--registry", help="model registry: update its promoted version and register the result")
    source.add_argument("--model", help="an artifact outside any registry (nothing is registered)")
    parser.add_argument("--from", dest="from_version", metavar="VERSION",
                        help="with --registry: start from this version instead of the promoted one")
    parser.add_argument("--data", required=True, help="the new labelled data (file, image folder or builtin:NAME)")
    parser.add_argument("--out", help="run directory of the new version (default runs/<timestamp>-update-METHOD)")
    parser.add_argument("--method", choices=METHODS, default="replay", help="how to fight forgetting (naive: not at all)")
    parser.add_argument("--max-forgetting", type=float, default=0.02,
                        help="largest allowed drop of mean accuracy on earlier batches (0.02 = 2 points)")
    parser.add_argument("--require-promotion", action="store_true",
                        help="exit with status 1 when the new version is not promoted (not promotable)")
    parser.add_argument("--replay-size", type=int, default=500, help="stored examples per batch for replay / EWC")
    parser.add_argument("--penalty", type=float, default=0.0, help="l2sp α or ewc λ (0: 0.01 / 5000)")
    parser.add_argument("--lwf-weight", type=float, default=1.0, help="lwf: weight w of the distillation term")
    parser.add_argument("--temperature", type=float, default=2.0, help="lwf: distillation temperature T")
    add_config_flags(parser, exclude=NOT_FOR_UPDATE)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..continual.update import UpdateOptions

    if args.from_version and not args.registry:
        raise ConfigError("--from needs --registry (with --model, the artifact itself is the starting version)")
    options = UpdateOptions(method=args.method, max_forgetting=args.max_forgetting, replay_size=args.replay_size,
                            penalty=args.penalty, lwf_weight=args.lwf_weight, temperature=args.temperature)
    fit_options = {k: v for k, v in vars(args).items() if k not in OWN}
    accepted = _registered(args, options, fit_options) if args.registry else _unregistered(args, options, fit_options)
    return 1 if args.require_promotion and not accepted else 0


def _registered(args: argparse.Namespace, options, fit_options: dict) -> bool:
    from ..continual.registered import update_registered

    done = update_registered(args.registry, args.data, args.out, options, from_version=args.from_version, **fit_options)
    result = done.result
    print(result.ledger.table())
    print(f"\n{done.version.version} (parent {result.parent}) registered in {done.registry}; run: {result.run_dir}")
    _say(done.message, done.promoted)
    return done.promoted


def _unregistered(args: argparse.Namespace, options, fit_options: dict) -> bool:
    from ..continual.update import update

    result = update(args.model, args.data, args.out, options, **fit_options)
    print(result.ledger.table())
    print(f"\n{result.version} (parent {result.parent}) written to {result.model_dir}")
    _say(("promotable: " if result.promotable else "NOT promotable: ") + result.reason, result.promotable)
    return result.promotable


def _say(message: str, good: bool) -> None:
    """The verdict as the last line of stdout; a refusal also as a warning on stderr (even --quiet)."""
    print(message)
    if not good:
        print(f"transferkit: warning: {message}", file=sys.stderr)
