"""`transferkit.auto`: rank the candidates, fine-tune the top k, and check the ranking against
the accuracy actually reached.

    candidates → rank (transferability scores on a training sample) → top-k by --select-by
               → `fit` each (RUN/candidates/<model>) → Kendall τ and weighted τ of every score
               against the test accuracy reached → best by VALIDATION accuracy → RUN/model

The best model is chosen on validation accuracy, never on the test accuracy that τ is computed
from, so the reported test accuracy of the winner is not flattered by the choice. Only the top k
are fine-tuned, so τ is measured on candidates the selecting score already liked (a selection
effect the report names), and with few candidates it is coarse: for n = 2, τ is −1, 0 or +1.
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import FitConfig
from ..errors import ConfigError
from ..evaluation.rank_report import write_auto_report
from ..io_utils import atomic_dir, write_json_atomic
from ..pipeline import fit
from ..runs import Log, claim_run_dir, start_run_dir
from ..strategies import parse_strategy
from .ranking import kendall_tau, weighted_kendall_tau
from .select import SCORE_NAMES, Candidate, Ranking, parse_candidates, rank_candidates, ranking_config, tau_or_none


@dataclass
class AutoResult:
    """Where the run is, its best model, and what auto.json holds."""

    run_dir: Path
    model_dir: Path
    best: str
    summary: dict[str, Any]
    ranking: Ranking


def auto(models: str | list[str], *, out: str | Path, top_k: int = 3, select_by: str = "logme",
         sample: int | None = 1000, overwrite: bool = False, quiet: bool = False, **options: Any) -> AutoResult:
    """Rank `models`, fine-tune the `top_k` best by `select_by`, report τ; the best artifact is RUN/model.

    `options` are any FitConfig fields (data, strategy, epochs, train_size, lr, ...): the data
    options define the ranking sample too, the rest go to every candidate's `fit`.
    """
    candidates = parse_candidates(models)
    check_auto_options(candidates, top_k, select_by)
    cfg = ranking_config(options, quiet)
    parse_strategy(cfg.strategy)  # an unknown strategy fails now, not after the ranking
    run_dir, log = Path(out), Log(cfg.quiet)
    claim_run_dir(run_dir, overwrite, resume=False)

    ranking = rank_candidates(candidates, cfg, sample, log)
    chosen = select_top(ranking, candidates, select_by, top_k)
    start_run_dir(run_dir, overwrite, resume=False)
    write_json_atomic(run_dir / "ranking.json", ranking.to_dict())

    results = []
    for rank, candidate in enumerate(chosen, start=1):
        log(f"fine-tuning candidate {rank}/{len(chosen)}: {candidate.spec} ({cfg.strategy})")
        results.append(fine_tune(candidate, rank, cfg, run_dir / "candidates" / slug(candidate.spec), ranking))
    best = pick_best(results)
    copy_model(Path(best["run_dir"]) / "model", run_dir / "model")
    summary = summarise(ranking, results, best, select_by, top_k, cfg)
    write_json_atomic(run_dir / "auto.json", summary)
    write_auto_report(run_dir, ranking, summary)
    log(f"best: {best['model']} (validation accuracy {best['val_accuracy']:.4f}, test {best['accuracy']:.4f}); "
        f"report: {run_dir / 'report.html'}")
    return AutoResult(run_dir, run_dir / "model", best["model"], summary, ranking)


def check_auto_options(candidates: list[Candidate], top_k: int, select_by: str) -> None:
    """auto needs a choice to make and at least two fine-tuned candidates for τ."""
    if len(candidates) < 2:
        raise ConfigError(f"auto needs at least two candidates to choose between, got {len(candidates)} "
                          f"({', '.join(c.spec for c in candidates)}); use --models A,B[,...] or `transferkit fit`")
    if top_k < 2:
        raise ConfigError(f"--top-k must be >= 2 (Kendall τ needs two fine-tuned candidates), not {top_k}")
    if select_by not in SCORE_NAMES:
        raise ConfigError(f"--select-by must be one of {', '.join(SCORE_NAMES)}, not {select_by!r}")


def select_top(ranking: Ranking, candidates: list[Candidate], select_by: str, top_k: int) -> list[Candidate]:
    """The top_k candidates by `select_by`, best first; every candidate must have that score."""
    lacking = [c.model for c in ranking.candidates if select_by not in c.scores]
    if lacking:
        usable = [m for m in ranking.metrics if all(m in c.scores for c in ranking.candidates)]
        raise ConfigError(f"--select-by {select_by} does not apply to {', '.join(lacking)}; "
                          f"use one of {', '.join(usable)}")
    by_spec = {c.spec: c for c in candidates}
    ordered = sorted(ranking.candidates, key=lambda c: (c.ranks[select_by], c.model))
    return [by_spec[c.model] for c in ordered[:top_k]]


def slug(spec: str) -> str:
    """A directory name for a candidate spec (dir:/x/y@64 → dir-x-y-64)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-.") or "model"


def fine_tune(candidate: Candidate, selection_rank: int, cfg: FitConfig, out: Path, ranking: Ranking) -> dict[str, Any]:
    """`fit` one candidate with the shared settings; its scores, accuracies and where its run is."""
    if out.exists():
        raise ConfigError(f"two candidates map to the run directory {out}; rename one (e.g. a different dir: path)")
    settings = {**cfg.to_dict(), "model": candidate.model, "out": str(out), "overwrite": False, "resume": False,
                "max_length": candidate.size or cfg.max_length, "image_size": candidate.size or cfg.image_size}
    metrics = fit(**settings).metrics
    scored = next(c for c in ranking.candidates if c.model == candidate.spec)
    return {"model": candidate.spec, "scores": scored.scores, "selection_rank": selection_rank,
            "accuracy": metrics["after"]["accuracy"], "macro_f1": metrics["after"]["macro_f1"],
            "val_accuracy": best_validation_accuracy(out, metrics["best_step"]),
            "train_seconds": metrics["train_seconds"], "run_dir": str(out)}


def pick_best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest validation accuracy (never test: τ is computed on test); ties go to the better-ranked."""
    return max(results, key=lambda r: (r["val_accuracy"], -r["selection_rank"]))


def best_validation_accuracy(run_dir: Path, best_step: int | None) -> float:
    """Validation accuracy of the restored (best) weights, from the run's history.csv."""
    with (run_dir / "history.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    at_best = [r for r in rows if int(r["step"]) == best_step]
    return float(at_best[-1]["val_accuracy"]) if at_best else max(float(r["val_accuracy"]) for r in rows)


def copy_model(source: Path, target: Path) -> None:
    """Copy the best candidate's artifact to RUN/model, atomically (RUN is then self-contained)."""
    with atomic_dir(target, overwrite=True) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)


def summarise(ranking: Ranking, results: list[dict[str, Any]], best: dict[str, Any], select_by: str,
              top_k: int, cfg: FitConfig) -> dict[str, Any]:
    """auto.json: per-candidate accuracy and scores, τ and weighted τ per score, the best model."""
    accuracies = {r["model"]: r["accuracy"] for r in results}
    taus, weighted, counts, picked = {}, {}, {}, {}
    for name in ranking.metrics:
        having = [r for r in results if name in r["scores"]]
        if len(having) < 2:
            continue
        scores, reached = [r["scores"][name] for r in having], [r["accuracy"] for r in having]
        taus[name] = tau_or_none(kendall_tau, scores, reached)
        weighted[name] = tau_or_none(weighted_kendall_tau, scores, reached)
        counts[name] = len(having)
        top = max(having, key=lambda r: r["scores"][name])
        picked[name] = accuracies[top["model"]] == max(reached)
    return {"data": ranking.data, "sample": ranking.sample, "strategy": cfg.strategy, "epochs": cfg.epochs,
            "train_size": cfg.train_size, "select_by": select_by, "top_k": top_k,
            "n_candidates": len(ranking.candidates), "n_fine_tuned": len(results), "candidates": results,
            "kendall_tau": taus, "weighted_tau": weighted, "tau_n": counts, "score_picked_most_accurate": picked,
            "best": best["model"], "best_chosen_by": "validation accuracy"}
