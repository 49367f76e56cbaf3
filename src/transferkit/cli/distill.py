"""`transferkit distill --teacher DIR --student MODEL --data ... [--temperature T] [--alpha A] --out RUN`.

A fine-tuned artifact (the teacher) trains a small student with α·T²·KL + (1−α)·CE (Hinton et
al., 2015); the report compares teacher, student without and student with distillation on the same
test split. Every `fit` flag (data, strategy, epochs, lr, seed, ...) sets the students' training.
"""

from __future__ import annotations

import argparse

from .fit import add_config_flags

NOT_FOR_DISTILL = ("model", "resume", "eval_data", "skip_before")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("distill", help="train a small student from a fine-tuned teacher (knowledge distillation)")
    parser.add_argument("--teacher", required=True, help="the teacher: a transferkit artifact (a run's model/ directory)")
    parser.add_argument("--student", default="minilm-l6", help="the student's source model: a zoo name, dir:PATH or hf:ORG/NAME")
    parser.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T > 0 of teacher and student")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight α ∈ [0, 1] of the distillation term; 1 − α weighs the labels' cross-entropy")
    parser.add_argument("--unlabelled", help="unlabelled texts added to the transfer set: one per line, or a CSV/TSV/JSONL")
    parser.add_argument("--unlabelled-column", help="text column of a CSV/TSV/JSONL --unlabelled file (default: --text-column)")
    add_config_flags(parser, exclude=NOT_FOR_DISTILL)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..distillation import distill

    own = ("teacher", "student", "temperature", "alpha", "unlabelled", "unlabelled_column")
    options = {k: v for k, v in vars(args).items() if k not in (*own, "run", "command")}
    result = distill(args.teacher, args.student, temperature=args.temperature, alpha=args.alpha,
                     unlabelled=args.unlabelled, unlabelled_column=args.unlabelled_column, **options)
    metrics = result.metrics
    print(f"run: {result.run_dir}")
    print(f"model: {result.model_dir}")
    print(f"{'model':<30}{'accuracy':>10}{'macro-F1':>10}{'agreement':>11}")
    for key, label in (("teacher", "teacher"), ("student_plain", "student without distillation"),
                       ("student_distilled", "student with distillation")):
        entry = metrics[key]
        agreement = f"{entry['agreement_with_teacher']:.4f}" if "agreement_with_teacher" in entry else "—"
        print(f"{label:<30}{entry['accuracy']:>10.4f}{entry['macro_f1']:>10.4f}{agreement:>11}")
    print(metrics["verdict"])
    return 0
