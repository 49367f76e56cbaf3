"""Distillation MPNet → MiniLM: does a teacher bring a small student closer to it than plain fine-tuning?

The teacher is a linear probe on frozen MPNet-base features (all-mpnet-base-v2, 109M parameters;
fine-tuning MPNet takes ~3.8 s per step of 16 on 2 cores, the probe minutes), trained on the same
labelled examples as the students. The student is MiniLM-L6 (22.7M), fully fine-tuned twice with
the same split, seed and hyperparameters: once on the labels alone, once with Hinton et al.'s
loss α·T²·KL + (1−α)·CE, its transfer set extended by `--unlabelled-size` further training
snippets whose labels are dropped (the remaining training pool of the same split, never
validation or test). All three are evaluated on the same test split (2,114 snippets).

    python benchmarks/distill.py [--train-size 2000] [--unlabelled-size 2000] [--epochs 2] [--json out.json]

Prints a Markdown table (accuracy with 95% bootstrap CIs, macro-F1, agreement with the teacher,
accuracy retained, parameters, CPU latency) and the paired distilled − plain difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import transferkit
from transferkit.data import prepare_task_data

ROWS = (("teacher", "teacher: MPNet-base linear probe"), ("student_plain", "MiniLM-L6 fine-tuned"),
        ("student_distilled", "MiniLM-L6 distilled"))


def unlabelled_pool(args: argparse.Namespace) -> list[str]:
    """Training-split texts not among the `train_size` labelled ones (same seed, same split)."""
    full = prepare_task_data(args.data, seed=args.seed)
    used = set(prepare_task_data(args.data, train_size=args.train_size, seed=args.seed).train.ids)
    rest = [text for text, example_id in zip(full.train.items, full.train.ids) if example_id not in used]
    picked = np.random.default_rng(args.seed).choice(len(rest), size=min(args.unlabelled_size, len(rest)), replace=False)
    return [rest[i] for i in sorted(picked)]


def table(metrics: dict) -> str:
    lines = ["| model | parameters | test accuracy [95% CI] | macro-F1 | agreement with teacher | accuracy retained "
             "| ms/example, batch 1 | examples/s, batch 32 |", "|---|---|---|---|---|---|---|---|"]
    for key, label in ROWS:
        m = metrics[key]
        low, high = m["accuracy_ci95"]
        agreement = f"{m['agreement_with_teacher']:.4f}" if key != "teacher" else "—"
        retained = f"{100 * m['retention']:.1f}%" if key != "teacher" else "—"
        lines.append(f"| {label} | {m['parameters'] / 1e6:.1f}M | {m['accuracy']:.4f} [{low:.4f}, {high:.4f}] "
                     f"| {m['macro_f1']:.4f} | {agreement} | {retained} | {m['latency']['ms_per_example_batch1']:.1f} "
                     f"| {m['latency']['examples_per_s_batch32']:.1f} |")
    return "\n".join(lines)


def paired(metrics: dict) -> str:
    def ci(delta: dict) -> str:
        return f"{delta['mean']:+.4f} [{delta['ci95'][0]:+.4f}, {delta['ci95'][1]:+.4f}]"

    return (f"distilled − plain (paired bootstrap, 95% CI): accuracy {ci(metrics['delta_accuracy'])}, "
            f"agreement with the teacher {ci(metrics['delta_agreement'])}\n"
            f"gap to the teacher: plain {ci(metrics['student_plain']['vs_teacher'])}, "
            f"distilled {ci(metrics['student_distilled']['vs_teacher'])}\n{metrics['verdict']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="builtin:vader-movie")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--unlabelled-size", type=int, default=2000, help="0: the labelled examples only")
    parser.add_argument("--epochs", type=int, default=2, help="student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=10, help="epochs of the linear probe on cached features")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    common = dict(data=args.data, train_size=args.train_size, seed=args.seed, quiet=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        teacher = transferkit.fit(model="mpnet-base", strategy="linear-probe", epochs=args.teacher_epochs,
                                  skip_before=True, out=f"{tmp}/teacher", **common)
        teacher_seconds = time.perf_counter() - started
        unlabelled = None
        if args.unlabelled_size:
            unlabelled = Path(tmp) / "unlabelled.jsonl"
            unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in unlabelled_pool(args)), encoding="utf-8")
        result = transferkit.distill(teacher.model_dir, "minilm-l6", temperature=args.temperature, alpha=args.alpha,
                                     unlabelled=unlabelled, epochs=args.epochs, out=f"{tmp}/run", **common)
    metrics = result.metrics
    wall = time.perf_counter() - started
    print(table(metrics))
    print(paired(metrics))
    print(f"n_test {metrics['n_test']}, {metrics['n_train']} labelled + {metrics['distillation']['n_unlabelled']} unlabelled "
          f"training examples; T = {args.temperature}, α = {args.alpha}; {metrics['teacher']['latency']['threads']} threads; "
          f"teacher fit {teacher_seconds:.0f} s, students {metrics['student_plain']['train_seconds']:.0f} s + "
          f"{metrics['student_distilled']['train_seconds']:.0f} s of training, wall {wall:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "wall_seconds": wall,
                                         "teacher_fit_seconds": teacher_seconds, "metrics": metrics}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
