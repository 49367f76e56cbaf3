"""`transferkit demo`: the main job on the embedded default (what `make demo` runs).

Fine-tunes minilm-l6 on VADER movie snippets (2,000 training examples, 2 epochs), evaluates
BEFORE (a linear probe on the frozen encoder) and AFTER in-domain and cross-domain on Amazon
review snippets, and prints the table and where the report is.
"""

from __future__ import annotations

import argparse

DEMO = dict(
    data="builtin:vader-movie", model="minilm-l6", strategy="full", train_size=2000, epochs=2,
    eval_data=["builtin:vader-amazon"], seed=0,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="fine-tune minilm-l6 on VADER movie sentiment, test in- and cross-domain")
    parser.add_argument("--out", default="runs/demo", help="run directory (replaced on every demo run)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report import comparison_rows
    from ..pipeline import fit

    result = fit(**DEMO, out=args.out, overwrite=True, quiet=args.quiet)
    header = ["evaluation set", "n", "BEFORE acc", "AFTER acc", "Δ accuracy [95% CI]"]
    rows = comparison_rows(result.metrics)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
    print(f"\n{result.metrics['verdict']}")
    print(f"BEFORE = {result.metrics['before']['description']}; AFTER = minilm-l6 fine-tuned ({result.metrics['strategy']}).")
    print(f"report: {result.run_dir / 'report.html'}   model: {result.model_dir}")
    return 0
