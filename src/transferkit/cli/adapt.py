"""`transferkit adapt --source DATA --target DATA --model NAME [--methods dann,coral,mmd,joint]`.

Source-only always runs as the baseline; each method is compared with it on the target test
split. Training options are the same flags as `fit`.
"""

from __future__ import annotations

import argparse

from .fit import add_config_flags

NOT_FOR_ADAPT = ("data", "train", "val", "test", "strategy", "eval_data", "skip_before", "resume")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("adapt", help="domain adaptation: source-only vs DANN / CORAL / MMD / joint, on the target")
    parser.add_argument("--source", required=True, help="labelled source data (file, image folder or builtin:NAME)")
    parser.add_argument("--target", required=True, help="target data; its labels are used only as --target-labels allows")
    parser.add_argument("--methods", default="dann,coral,mmd", help="comma-separated: dann, coral, mmd, joint (options as name:k=v)")
    parser.add_argument("--target-labels", choices=("none", "few", "all"), default="none",
                        help="target labels the learner may see (joint needs few or all)")
    parser.add_argument("--few-per-class", type=int, default=10, help="labelled target examples per class with --target-labels few")
    parser.add_argument("--target-size", type=int, help="use at most this many target training examples")
    parser.add_argument("--target-share", type=float, default=0.5, help="share of target examples in each training batch")
    parser.add_argument("--save-models", action=argparse.BooleanOptionalAction, default=True,
                        help="write each method's artifact under RUN/methods/NAME/model")
    add_config_flags(parser, exclude=NOT_FOR_ADAPT)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..adaptation import adapt

    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "source", "target", "methods",
                                                                  "target_labels", "few_per_class", "target_size",
                                                                  "target_share", "save_models")}
    report = adapt(args.source, args.target, args.methods, target_labels=args.target_labels,
                   few_per_class=args.few_per_class, target_size=args.target_size, target_share=args.target_share,
                   save_models=args.save_models, **options)
    print(f"{'method':<14}{'target acc':>11}  {'95% CI':<17}{'Δ vs source-only [paired 95% CI]':<34}{'source acc':>11}")
    for name, r in report["methods"].items():
        low, high = r["target_ci95"]
        print(f"{name:<14}{r['target_accuracy']:>11.4f}  [{low:.3f}, {high:.3f}]  {_delta_text(name, r):<34}"
              f"{r['source_accuracy']:>11.4f}")
    return 0


def _delta_text(name: str, result: dict) -> str:
    from ..adaptation import BASELINE
    from ..evaluation.report import ci_text

    return "(baseline)" if name == BASELINE else ci_text(result["delta_vs_source_only"])
