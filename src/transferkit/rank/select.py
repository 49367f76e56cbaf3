"""Rank candidate source models on a target task without fine-tuning any of them.

For every candidate: frozen features of a stratified sample of the task's *training* split (the
split `fit` would make with the same seed and fractions, so test data never influences the
choice), read through the disk feature cache — a later `fit --train-size N` with N = the sample
size reuses them — and then every transferability score of `transferkit.rank`:

- LogME (You et al., ICML 2021) and H-score (Bao et al., ICIP 2019) on the features;
- k-NN accuracy (5-fold cross-validated), a cheap empirical reference;
- LEEP (Nguyen et al., ICML 2020) and NCE (Tran et al., ICCV 2019), which need the source
  model's own classifier probabilities: only for backbones that have a source head
  (`Backbone.source_head`, e.g. EfficientNet's ImageNet classifier). Sentence encoders have
  none; those scores are then absent and the ranking says why, rather than inventing a head.

Higher is better for every score. Candidates are zoo names, `dir:PATH` or `hf:ORG/NAME`,
optionally with `@N`: the image size (vision) or maximum token length (text) for that candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from ..config import FitConfig
from ..data import TaskData, prepare_task_data
from ..errors import ConfigError, DataError, ModelError
from ..evaluation.metrics import softmax
from ..features import cache_path, cached_features
from ..evaluation.rank_report import write_rank_report
from ..io_utils import write_json_atomic
from ..runs import Log, claim_run_dir, start_run_dir
from ..zoo import Backbone, load_backbone
from ..zoo.registry import spec_modality
from .hscore import hscore
from .leep import leep
from .logme import logme
from .nce import nce
from .ranking import kendall_tau
from .reference import knn_accuracy

SCORE_NAMES = ("logme", "hscore", "nce", "leep", "knn")
SOURCE_HEAD_SCORES = ("nce", "leep")
KNN_FOLDS = 5
ORDER_BY = "logme"


@dataclass(frozen=True)
class Candidate:
    """One candidate as given: `model` (zoo name, dir:, hf:) and an optional size override."""

    spec: str
    model: str
    size: int | None = None  # image size (vision) or max length (text) for this candidate

    @classmethod
    def parse(cls, spec: str) -> Candidate:
        """`MODEL` or `MODEL@N` (N: image size or max token length)."""
        spec = spec.strip()
        model, at, size = spec.rpartition("@")
        if at and size.isdigit() and model:
            if int(size) < 1:
                raise ConfigError(f"candidate {spec!r}: the size after @ must be >= 1")
            return cls(spec, model, int(size))
        return cls(spec, spec)


def parse_candidates(models: str | Sequence[str]) -> list[Candidate]:
    """Candidates from 'a,b,c' or a list; an empty list or a repeated candidate is an error."""
    specs = models.split(",") if isinstance(models, str) else list(models)
    candidates = [Candidate.parse(s) for s in specs if s.strip()]
    if not candidates:
        raise ConfigError("no candidate models given; use --models A,B (zoo names, dir:PATH or hf:ORG/NAME)")
    seen = [c.spec for c in candidates]
    repeated = sorted({s for s in seen if seen.count(s) > 1})
    if repeated:
        raise ConfigError(f"candidate(s) listed twice: {', '.join(repeated)}")
    return candidates


@dataclass
class CandidateScores:
    """Scores of one candidate on the ranking sample (absent keys: the score does not apply)."""

    model: str
    modality: str
    feature_dim: int
    scores: dict[str, float]
    seconds: float  # feature extraction (plus the source head); near 0 when served from the cache
    cached: bool
    score_seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)


@dataclass
class Ranking:
    """Every candidate's scores and ranks, and how far the scores agree with each other."""

    data: str
    modality: str
    sample: int
    label_names: list[str]
    seed: int
    candidates: list[CandidateScores]
    agreement: dict[str, dict[str, float | None]]
    notes: list[str]

    @property
    def metrics(self) -> list[str]:
        """The scores that at least one candidate has, in SCORE_NAMES order."""
        present = {name for c in self.candidates for name in c.scores}
        return [name for name in SCORE_NAMES if name in present]

    def to_dict(self) -> dict[str, Any]:
        """What ranking.json holds."""
        return {"data": self.data, "modality": self.modality, "sample": self.sample, "classes": self.label_names,
                "seed": self.seed, "order_by": ORDER_BY, "metrics": self.metrics,
                "candidates": [asdict(c) for c in self.candidates], "agreement": self.agreement, "notes": self.notes}


def rank_models(models: str | Sequence[str], *, sample: int | None = 1000, out: str | Path | None = None,
                overwrite: bool = False, quiet: bool = False, **options: Any) -> Ranking:
    """Score every candidate in `models` on a stratified `sample` (None: all) of the training data.

    `options` are FitConfig's data and preprocessing fields (data, train, val, test, text_column,
    label_column, val_fraction, test_fraction, seed, max_length, image_size, eval_batch_size),
    so the sample is drawn from exactly the training split `fit` would use. With `out`, the
    ranking is written there: ranking.json, report.md and report.html.
    """
    cfg = ranking_config(options, quiet)
    candidates = parse_candidates(models)
    if out is not None:
        claim_run_dir(Path(out), overwrite, resume=False)
    ranking = rank_candidates(candidates, cfg, sample, Log(cfg.quiet))
    if out is not None:
        start_run_dir(Path(out), overwrite, resume=False)
        write_json_atomic(Path(out) / "ranking.json", ranking.to_dict())
        write_rank_report(Path(out), ranking)
    return ranking


def ranking_config(options: dict[str, Any], quiet: bool) -> FitConfig:
    """A validated FitConfig for the data options (classification only)."""
    if options.get("task", "classification") != "classification":
        raise ConfigError("transferability ranking applies to classification tasks only")
    return FitConfig.from_dict({**options, "quiet": quiet})


def rank_candidates(candidates: list[Candidate], cfg: FitConfig, sample: int | None, log: Log) -> Ranking:
    """Check the candidates against the data, then score them one at a time (one in memory)."""
    data = ranking_sample(cfg, sample)
    for candidate in candidates:  # every cheap check before the first expensive model load
        modality = spec_modality(candidate.model)
        if modality != data.modality:
            raise DataError(f"{candidate.model} is a model for {modality} but {data.origin} holds {data.modality} "
                            f"data; rank {data.modality} models on it")
    log(f"ranking {len(candidates)} candidate(s) on {len(data.train)} training examples of {data.origin}")
    results = [score_candidate(c, data, cfg, log) for c in candidates]
    assign_ranks(results)
    results.sort(key=lambda r: (r.ranks.get(ORDER_BY, len(results) + 1), r.model))
    return Ranking(data.origin, data.modality, len(data.train), data.label_names, cfg.seed, results,
                   metric_agreement(results), ranking_notes(results, data))


def ranking_sample(cfg: FitConfig, sample: int | None) -> TaskData:
    """The task's splits with the training split cut to a stratified `sample`; ≥ 2 per class."""
    if sample is not None and sample < 2:
        raise ConfigError(f"--sample must be >= 2, not {sample}")
    options = dict(task="classification", text_column=cfg.text_column, label_column=cfg.label_column,
                   val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed)
    try:
        data = prepare_task_data(cfg.data, cfg.train, cfg.val, cfg.test, train_size=sample, **options)
    except DataError:
        if sample is None:
            raise
        full = prepare_task_data(cfg.data, cfg.train, cfg.val, cfg.test, **options)
        if sample >= 2 * len(full.label_names):
            raise
        raise DataError(f"{full.origin}: --sample {sample} is too small for {len(full.label_names)} classes; "
                        f"use at least {2 * len(full.label_names)} (2 examples per class)") from None
    counts = np.bincount(data.train.targets, minlength=len(data.label_names))
    if counts.min() < 2:
        name = data.label_names[int(counts.argmin())]
        raise DataError(f"{data.origin}: class {name!r} has only {counts.min()} example(s) in the ranking sample of "
                        f"{len(data.train)}; the scores need at least 2 per class: raise --sample or add examples")
    return data


def score_candidate(candidate: Candidate, data: TaskData, cfg: FitConfig, log: Log) -> CandidateScores:
    """Load one candidate, get its (cached) features and source probabilities, compute every score."""
    backbone = load_backbone(candidate.model, max_length=candidate.size or cfg.max_length,
                             image_size=candidate.size or cfg.image_size)
    items = data.train.items
    cached = cache_path(backbone, items).is_file()
    started = time.perf_counter()
    features = cached_features(backbone, items, cfg.eval_batch_size)
    check_finite(features, candidate.spec, "features", data)
    probs = source_probabilities(backbone, features)
    seconds = time.perf_counter() - started
    notes = []
    if probs is None:
        notes.append(f"LEEP/NCE skipped: {candidate.spec} has no source classifier to give class probabilities")
    else:
        check_finite(probs, candidate.spec, "source-classifier probabilities", data)
    scores, timing, score_notes = compute_scores(features, data.train.targets, probs)
    log(f"{candidate.spec}: features {features.shape[0]}x{features.shape[1]} in {seconds:.1f}s"
        f"{' (cache)' if cached else ''}; " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return CandidateScores(candidate.spec, backbone.modality, int(features.shape[1]), scores, seconds, cached,
                           timing, notes + score_notes)


def source_probabilities(backbone: Backbone, features: np.ndarray) -> np.ndarray | None:
    """The source classifier's probabilities [N, Z] (float64), or None without a source head."""
    with torch.inference_mode():
        logits = backbone.source_head(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
    return None if logits is None else softmax(logits.double().numpy())


def check_finite(values: np.ndarray, model: str, what: str, data: TaskData) -> None:
    """A model giving NaN or inf is broken (weights, or inputs it cannot handle): say where."""
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ModelError(f"{model}: its {what} contain NaN or inf for {int(bad.sum())} of {len(values)} examples "
                         f"(first: id {data.train.ids[row]} of {data.origin}); check the model's weights and the inputs")


def compute_scores(features: np.ndarray, targets: np.ndarray,
                   probs: np.ndarray | None) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """(scores, seconds per score, notes) for every score that applies."""
    calls: dict[str, Callable[[], float]] = {"logme": partial(logme, features, targets),
                                              "hscore": partial(hscore, features, targets)}
    if probs is not None:
        calls.update(nce=partial(nce, probs, targets), leep=partial(leep, probs, targets))
    notes = []
    smallest = int(np.bincount(targets).min())
    if smallest >= KNN_FOLDS:
        calls["knn"] = partial(knn_accuracy, features, targets, folds=KNN_FOLDS)
    else:
        notes.append(f"knn skipped: {KNN_FOLDS}-fold cross-validation needs {KNN_FOLDS} examples per class, "
                     f"the smallest class has {smallest}")
    scores, timing = {}, {}
    for name in SCORE_NAMES:
        if name in calls:
            started = time.perf_counter()
            scores[name] = float(calls[name]())
            timing[name] = time.perf_counter() - started
    return scores, timing, notes


def assign_ranks(results: list[CandidateScores]) -> None:
    """Rank 1 = highest score, per score, among the candidates that have it (ties share a rank)."""
    for name in SCORE_NAMES:
        having = [r for r in results if name in r.scores]
        ranks = rankdata([-r.scores[name] for r in having], method="min")
        for result, rank in zip(having, ranks):
            result.ranks[name] = int(rank)


def metric_agreement(results: list[CandidateScores]) -> dict[str, dict[str, float | None]]:
    """Kendall τ between every two scores over the candidates having both (None: undefined)."""
    names = [n for n in SCORE_NAMES if any(n in r.scores for r in results)]
    table: dict[str, dict[str, float | None]] = {n: {} for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = [r for r in results if a in r.scores and b in r.scores]
            tau = tau_or_none(kendall_tau, [r.scores[a] for r in both], [r.scores[b] for r in both])
            table[a][b] = table[b][a] = tau
    return table


def tau_or_none(correlation: Callable[[np.ndarray, np.ndarray], float], x: Sequence[float],
                y: Sequence[float]) -> float | None:
    """A rank correlation, or None when fewer than 2 pairs or undefined (a constant side)."""
    if len(x) < 2:
        return None
    value = correlation(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return float(value) if np.isfinite(value) else None


def ranking_notes(results: list[CandidateScores], data: TaskData) -> list[str]:
    """What a reader must know to read the ranking right."""
    notes = []
    headless = [r.model for r in results if not any(s in r.scores for s in SOURCE_HEAD_SCORES)]
    if headless:
        notes.append("LEEP and NCE need the source model's own classifier probabilities; absent for "
                     f"{', '.join(headless)}: no source classifier (e.g. a sentence encoder), so none is invented")
    if len(results) < 2:
        notes.append("one candidate: its scores have nothing to be ranked against")
    else:
        notes.append(f"n = {len(results)} candidates: Kendall τ between scores takes only a few values and one "
                     "swapped pair moves it a lot; read agreement coarsely")
    return notes + list(data.notes)
