"""`transferkit evaluate --model DIR --data PATH|builtin:NAME`: metrics of an artifact on data."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="evaluate an artifact on labelled data")
    parser.add_argument("--model", required=True, help="artifact directory (a run's model/)")
    parser.add_argument("--data", required=True, help="labelled data: file, image folder or builtin:NAME")
    parser.add_argument("--split", choices=("auto", "test", "all"), default="auto",
                        help="auto: the artifact's test split on its own data, everything otherwise")
    parser.add_argument("--text-column")
    parser.add_argument("--label-column")
    parser.add_argument("--json", action="store_true", help="print all metrics as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.on_data import evaluate

    metrics = evaluate(args.model, args.data, split=args.split, text_column=args.text_column, label_column=args.label_column)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"{metrics['data']} ({metrics['split']}, n={metrics['n']})")
    for key in ("accuracy", "macro_f1", "mae", "rmse", "spearman", "r2"):
        if key in metrics:
            extra = ""
            if key == "accuracy":
                low, high = metrics["accuracy_ci95"]
                extra = f"  (95% CI {low:.4f}-{high:.4f})"
            print(f"  {key:<9} {metrics[key]:.4f}{extra}")
    return 0
