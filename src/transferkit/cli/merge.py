"""`transferkit merge --model DIR --out DIR`: fold a LoRA adapter artifact into a standalone model.

The merged model is loaded in a fresh process and compared with the adapter on the artifact's
test split before it is written: a max |Δ logit| above 1e-4 fails the merge and writes nothing.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("merge", help="merge a LoRA adapter artifact into a standalone model, verified")
    parser.add_argument("--model", required=True, help="the adapter artifact (a LoRA run's model/ directory)")
    parser.add_argument("--out", required=True, help="directory of the merged artifact (must not exist)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export.merge import merge_artifact

    result = merge_artifact(args.model, args.out, overwrite=args.overwrite, quiet=args.quiet)
    print(f"merged: {result.directory} ({result.merged_mb:.2f} MB; the adapter artifact is {result.adapter_mb:.2f} MB)")
    print(f"verified in a fresh process: max |Δ logit| {result.max_abs_logit_diff:.3g} over {result.n_verified} "
          "test examples (tolerance 1e-4)")
    return 0
