"""Domain adaptation: source-only vs DANN / CORAL / MMD / joint on real domain shifts.

Pairs: VADER movie → Amazon and Amazon → movie (minilm-l6), MNIST-5k → digits and digits →
MNIST-5k (EfficientNet-Lite0 at a small image size), each over several seeds; the target labels
are unseen (`none`) except for `joint`, which runs in a separate `few` setting (it needs labels).
Prints mean ± std of target accuracy per method, the Δ of the means against source-only, and
the mean ± std over seeds of each run's paired Δ (method − source-only on the same target test
examples; adapt.json's `delta_vs_source_only`).

    python benchmarks/domain.py [--seeds 3] [--train-size 600] [--target-size 600] [--epochs 1] [--json out.json]
                                [--workdir runs/bench-domain]   # keep the runs; a rerun resumes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from transferkit.adaptation import adapt

PAIRS = {  # source, target, model, backbone learning rate
    "vader-movie→vader-amazon": ("builtin:vader-movie", "builtin:vader-amazon", "minilm-l6", 5e-5),
    "vader-amazon→vader-movie": ("builtin:vader-amazon", "builtin:vader-movie", "minilm-l6", 5e-5),
    "mnist-5k→digits": ("builtin:mnist-5k", "builtin:digits", "efficientnet-lite0", 1e-3),
    "digits→mnist-5k": ("builtin:digits", "builtin:mnist-5k", "efficientnet-lite0", 1e-3),
}


def run_pair(name: str, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(target accuracies, paired Δ means) per method, one entry per seed."""
    source, target, model, lr = PAIRS[name]
    scores: dict[str, list[float]] = {}
    deltas: dict[str, list[float]] = {}
    settings = [("none", "dann,coral,mmd"), ("few", "joint")] if "joint" in args.methods else [("none", args.methods)]
    for seed in range(args.seeds):
        for labels, methods in settings:
            methods = ",".join(m for m in methods.split(",") if m in args.methods.split(","))
            run_dir = workdir / f"{name}-{labels}-{seed}"
            if (run_dir / "adapt.json").exists():  # finished earlier (--workdir): read, do not rerun
                report = json.loads((run_dir / "adapt.json").read_text(encoding="utf-8"))
                record_scores(report, labels, scores, deltas)
                continue
            report = adapt(source, target, methods, target_labels=labels, few_per_class=args.few_per_class,
                           target_size=args.target_size, model=model, epochs=args.epochs, train_size=args.train_size,
                           batch_size=32, max_length=64, image_size=args.image_size, lr=lr, head_lr=1e-3, seed=seed,
                           out=str(run_dir), quiet=True, save_models=False, overwrite=True)
            record_scores(report, labels, scores, deltas)
        print(f"{name} seed {seed}: " + ", ".join(f"{m} {v[-1]:.3f}" for m, v in scores.items()), file=sys.stderr)
    return scores, deltas


def record_scores(report: dict, labels: str, scores: dict[str, list[float]], deltas: dict[str, list[float]]) -> None:
    """Append one adapt run's target accuracy and paired Δ per method."""
    for method, result in report["methods"].items():
        key = method if labels == "none" or method != "source-only" else "source-only (few)"
        scores.setdefault(key, []).append(result["target_accuracy"])
        if "delta_vs_source_only" in result:
            deltas.setdefault(key, []).append(result["delta_vs_source_only"]["mean"])


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(scores: dict[str, list[float]], deltas: dict[str, list[float]]) -> dict[str, dict]:
    base = statistics.mean(scores["source-only"])
    table: dict[str, dict] = {}
    for m, v in scores.items():
        table[m] = {"mean": statistics.mean(v), "std": _std(v), "delta_vs_source_only": statistics.mean(v) - base, "runs": v}
        if m in deltas:
            table[m]["paired_delta"] = {"mean": statistics.mean(deltas[m]), "std": _std(deltas[m]), "runs": deltas[m]}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated pair names")
    parser.add_argument("--methods", default="dann,coral,mmd,joint")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--target-size", type=int, default=600)
    parser.add_argument("--few-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path,
                        help="keep every adapt run here; runs already there are read, not rerun (resume)")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for name in args.pairs.split(","):
            results[name] = summarise(*run_pair(name, args, workdir))
    print(f"{'pair':<28}{'method':<20}{'target acc (mean ± std)':>26}{'Δ vs source-only':>18}{'paired Δ (mean ± std)':>26}")
    for name, table in results.items():
        for method, r in table.items():
            paired = r.get("paired_delta")
            paired_text = f"{paired['mean']:+.4f} ± {paired['std']:.4f}" if paired else "—"
            print(f"{name:<28}{method:<20}{r['mean']:>18.4f} ± {r['std']:.4f}{r['delta_vs_source_only']:>+18.4f}"
                  f"{paired_text:>26}")
    if args.json:
        args.json.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
