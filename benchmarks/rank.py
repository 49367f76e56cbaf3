"""Choosing the source model: how fast the scores are, and how well they predicted the accuracy reached.

(a) The time of each transferability score on 5,000 × 768 synthetic features — benchmarks/rank_scores.py,
    called here, not duplicated.
(b) `transferkit.auto` on real data: the text candidates (minilm-l6, mpnet-base) on builtin:vader-movie
    and builtin:vader-amazon, the vision candidates (efficientnet-lite0/1/2) on builtin:mnist-5k; every
    candidate scored on a stratified training sample, fine-tuned, and Kendall τ / weighted τ of each score
    against the test accuracy reached.

    python benchmarks/rank.py --sample 1000 --train-size 1000 --strategy linear-probe --epochs 30 \
        --head-lr 3e-3 --patience 5 --image-size 64 --json rank-bench.json

For reference: TLlib's published evaluation (10 ImageNet models, 8 datasets) gives weighted τ ≈ 0.67 for
H-score and LogME, 0.50 for NCE and 0.29 for LEEP. With 2–3 candidates per dataset, τ here is coarse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import transferkit
from transferkit.rank.select import SCORE_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rank_scores  # noqa: E402  (benchmarks/rank_scores.py)

TASKS = {
    "vader-movie": ["minilm-l6", "mpnet-base"],
    "vader-amazon": ["minilm-l6", "mpnet-base"],
    "mnist-5k": ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
}


def time_scores(n: int, d: int, repeats: int) -> dict[str, float]:
    """(a): median seconds of each score on n × d features."""
    features, labels, probs = rank_scores.make_task(n, d, seed=0)
    timings = {}
    for name, call in rank_scores.score_calls(features, labels, probs).items():
        _, times = rank_scores.time_call(call, repeats)
        timings[name] = statistics.median(times)
    return timings


def run_auto(dataset: str, models: list[str], args: argparse.Namespace) -> dict:
    """(b): one `auto` run; its summary plus feature-extraction times and the wall time."""
    started = time.perf_counter()
    options = {"image_size": args.image_size} if dataset == "mnist-5k" and args.image_size else {}
    result = transferkit.auto(models, data=f"builtin:{dataset}", out=Path(args.out) / dataset, top_k=len(models),
                              sample=args.sample, train_size=args.train_size, strategy=args.strategy,
                              epochs=args.epochs, head_lr=args.head_lr, patience=args.patience, seed=args.seed,
                              overwrite=True,
                              quiet=True, **options)
    seconds = {c.model: c.seconds for c in result.ranking.candidates}
    return {**result.summary, "feature_seconds": seconds, "wall_seconds": time.perf_counter() - started}


def print_auto(dataset: str, summary: dict) -> None:
    names = [n for n in SCORE_NAMES if n in summary["kendall_tau"]]
    print(f"\n{dataset}: sample {summary['sample']}, {summary['strategy']} {summary['epochs']} epoch(s), "
          f"wall {summary['wall_seconds']:.0f}s")
    print(f"{'model':<22}" + "".join(f"{n:>10}" for n in names) + f"{'test acc':>10}{'features s':>12}")
    for c in summary["candidates"]:
        cells = "".join(f"{c['scores'][n]:>10.4f}" if n in c["scores"] else f"{'n/a':>10}" for n in names)
        print(f"{c['model']:<22}{cells}{c['accuracy']:>10.4f}{summary['feature_seconds'][c['model']]:>12.1f}")
    for key in ("kendall_tau", "weighted_tau"):
        values = summary[key]
        print(f"{key:<22}" + "".join(f"{'—' if values[n] is None else f'{values[n]:+.2f}':>10}" for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=1000, help="ranking sample per dataset")
    parser.add_argument("--train-size", type=int, default=1000, help="fine-tuning examples (= sample: features reused)")
    parser.add_argument("--strategy", default="linear-probe")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--patience", type=int, default=5, help="early stopping (validations without improvement)")
    parser.add_argument("--image-size", type=int, default=64, help="for mnist-5k (0: each model's native size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per score in (a)")
    parser.add_argument("--only", default=",".join(TASKS), help="datasets for (b), comma-separated")
    parser.add_argument("--skip-scores", action="store_true", help="skip (a)")
    parser.add_argument("--out", default="runs/bench-rank")
    parser.add_argument("--json", help="also write all results to this file")
    args = parser.parse_args()

    results: dict = {"settings": vars(args)}
    if not args.skip_scores:
        results["score_seconds"] = time_scores(5000, 768, args.repeats)
        print("(a) median seconds per score on 5,000 x 768 features (2 classes)")
        for name, seconds in results["score_seconds"].items():
            print(f"  {name:<32}{seconds:>8.3f}")
    results["auto"] = {}
    for dataset in [d for d in args.only.split(",") if d]:
        results["auto"][dataset] = run_auto(dataset, TASKS[dataset], args)
        print_auto(dataset, results["auto"][dataset])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
