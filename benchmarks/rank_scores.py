"""Time every transferability score in transferkit.rank on one synthetic task.

Features: N x D, two classes, built from 32 shared latent factors plus a class
shift and isotropic noise. LEEP and NCE get a 1000-way softmax "source head"
computed from the same features.

Usage:  PYTHONPATH=src python benchmarks/rank_scores.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from transferkit.rank import hscore, knn_accuracy, leep, linear_probe_accuracy, logme, nce

LATENT, SOURCE_CLASSES = 32, 1000


def make_task(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (features [n, d], labels [n] in {0, 1}, source probabilities [n, 1000])."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    latent = rng.normal(size=(n, LATENT)) @ rng.normal(size=(LATENT, d)) / np.sqrt(LATENT)
    shift = 0.1 * rng.normal(size=(2, d))
    features = latent + shift[labels] + rng.normal(size=(n, d))
    logits = features @ rng.normal(size=(d, SOURCE_CLASSES)) / np.sqrt(d)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return features, labels, probs / probs.sum(axis=1, keepdims=True)


def score_calls(
    features: np.ndarray, labels: np.ndarray, probs: np.ndarray
) -> dict[str, Callable[[], float]]:
    """Each score as a zero-argument call on the task."""
    return {
        "logme": partial(logme, features, labels),
        "hscore (Ledoit-Wolf)": partial(hscore, features, labels),
        "hscore (plain)": partial(hscore, features, labels, shrinkage=False),
        "leep": partial(leep, probs, labels),
        "nce": partial(nce, probs, labels),
        "knn_accuracy (5-fold)": partial(knn_accuracy, features, labels),
        "linear_probe_accuracy (5-fold)": partial(linear_probe_accuracy, features, labels),
    }


def time_call(call: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    """Return the call's value and its wall-clock times over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - start)
    return value, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="samples (default 5000)")
    parser.add_argument("--d", type=int, default=768, help="feature dimension (default 768)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per score (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=str, default=None, help="also write results to PATH")
    args = parser.parse_args()

    features, labels, probs = make_task(args.n, args.d, args.seed)
    results = {}
    print(f"{args.n} x {args.d} features, 2 classes, {os.cpu_count()} CPUs, {args.repeats} runs")
    print(f"{'score':<32}{'median s':>10}{'value':>12}")
    for name, call in score_calls(features, labels, probs).items():
        value, times = time_call(call, args.repeats)
        results[name] = {"median_s": statistics.median(times), "runs_s": times, "value": value}
        print(f"{name:<32}{statistics.median(times):>10.3f}{value:>12.4f}")

    if args.json:
        report = {
            "n": args.n,
            "d": args.d,
            "classes": 2,
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "results": results,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
