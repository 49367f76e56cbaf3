"""`transferkit export --model DIR --format FORMAT --out DIR`: a faster or smaller artifact, verified.

Formats: int8 (PyTorch dynamic quantization), onnx (ONNX Runtime), onnx-int8 (ONNX Runtime
dynamic quantization), pruned (magnitude pruning, optional recovery fine-tune). The export is
loaded in a fresh process and compared with its source on the source's test split before it is
written; an accuracy drop above --max-drop points fails the export and writes nothing.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export an artifact as int8, ONNX, ONNX int8 or pruned, verified")
    parser.add_argument("--model", required=True, help="the source artifact (a run's model/ directory)")
    parser.add_argument("--format", required=True,
                        help="int8, onnx, onnx-int8 or pruned; several, comma-separated, or all: each into OUT/<format> "
                             "and one report comparing them")
    parser.add_argument("--out", required=True, help="directory of the exported artifact (must not exist)")
    parser.add_argument("--max-drop", type=float, default=1.0,
                        help="largest accepted accuracy drop, in points (default 1.0); above it the export fails")
    parser.add_argument("--verify-data", help="labelled data to verify on instead of the source's test split")
    parser.add_argument("--sparsity", type=float, help="pruned: share of Linear/Conv weights set to zero, in [0, 1) (default 0.5)")
    parser.add_argument("--recover-epochs", type=int, help="pruned: fine-tuning epochs after pruning (default 0)")
    parser.add_argument("--recover-lr", type=float, help="pruned: learning rate of that fine-tuning (default 2e-5)")
    parser.add_argument("--repeats", type=int, default=1, help="timing runs per measurement; the median is reported")
    parser.add_argument("--seed", type=int, default=0, help="pruned: seed of the recovery fine-tune")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.artifact import read_meta, resolve_artifact_dir
    from ..export.exporter import export_model
    from ..export.report import text_table
    from ..export.suite import export_suite, requested_formats

    options = dict(max_drop=args.max_drop, verify_data=args.verify_data, sparsity=args.sparsity,
                   recover_epochs=args.recover_epochs, recover_lr=args.recover_lr, repeats=args.repeats, seed=args.seed,
                   overwrite=args.overwrite, quiet=args.quiet)
    if "," not in args.format and args.format.strip() != "all":
        result = export_model(args.model, args.format, args.out, **options)
        print(text_table([result.verification]))
        print(f"exported to {result.directory} (verification.json, report.html)")
        return 0
    formats = requested_formats(args.format, read_meta(resolve_artifact_dir(args.model))["modality"])
    results = export_suite(args.model, formats, args.out, **options)
    print(text_table([r.verification for r in results]))
    print(f"exported {', '.join(formats)} to {args.out}/<format>; the comparison: {args.out}/report.html")
    return 0
