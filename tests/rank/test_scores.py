"""Tests for transferkit.rank: known-answer rankings, LogME optimality, invariances, validation."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest

from transferkit.rank import (
    SCORES,
    hscore,
    kendall_tau,
    knn_accuracy,
    leep,
    linear_probe_accuracy,
    logme,
    logme_evidence,
    nce,
    weighted_kendall_tau,
)

N, D, C = 600, 32, 3
SOURCE_CLASSES = 4 * C

FEATURE_SCORES: dict[str, Callable[..., float]] = {
    **SCORES,
    "hscore_plain": partial(hscore, shrinkage=False),
}
SOURCE_SCORES: dict[str, Callable[..., float]] = {
    "leep": leep,
    "nce_probs": nce,
    "nce_labels": lambda probs, labels: nce(probs.argmax(axis=1), labels),
}
EXACT_FEATURE_SCORES = ["logme", "hscore", "hscore_plain"]


def make_labels(rng: np.random.Generator, n: int = N) -> np.ndarray:
    return rng.permutation(np.arange(n) % C)


def make_features(
    rng: np.random.Generator, labels: np.ndarray, d: int = D, separation: float = 1.0
) -> np.ndarray:
    """Class means scaled by ``separation`` plus unit Gaussian noise; 0 gives pure noise."""
    means = separation * rng.normal(size=(C, d))
    return means[labels] + rng.normal(size=(len(labels), d))


def make_source_probs(rng: np.random.Generator, labels: np.ndarray, informative: bool) -> np.ndarray:
    """Source-head probabilities over SOURCE_CLASSES classes.

    Informative: peaked on one of 4 source classes reserved for the sample's
    label. Uninformative: Dirichlet draws independent of the label.
    """
    if not informative:
        return rng.dirichlet(np.ones(SOURCE_CLASSES), size=len(labels))
    peak = 4 * labels + rng.integers(0, 4, size=len(labels))
    logits = 4.0 * np.eye(SOURCE_CLASSES)[peak] + rng.normal(size=(len(labels), SOURCE_CLASSES))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = make_labels(rng)
    return {
        "labels": labels,
        "informative": make_features(rng, labels),
        "noise": make_features(rng, labels, separation=0.0),
        "probs_informative": make_source_probs(rng, labels, informative=True),
        "probs_random": make_source_probs(rng, labels, informative=False),
    }


# --- known-answer rankings ---------------------------------------------------


# Plain H-score with N < D cannot rank at all (see the test after this one), so it is not in the N<D cases.
RANKING_CASES = [pytest.param(name, n, d, id=f"{name}-{shape}") for shape, (n, d) in (("N>D", (N, D)), ("N<D", (60, 128)))
                 for name in sorted(FEATURE_SCORES) if not (name == "hscore_plain" and n < d)]


@pytest.mark.parametrize("name, n, d", RANKING_CASES)
def test_feature_score_ranks_informative_features_first(name: str, n: int, d: int) -> None:
    rng = np.random.default_rng(1)
    labels = make_labels(rng, n)
    informative = make_features(rng, labels, d)
    noise = make_features(rng, labels, d, separation=0.0)
    score = FEATURE_SCORES[name]
    assert score(informative, labels) > score(noise, labels)


def test_plain_hscore_cannot_rank_when_samples_are_fewer_than_dimensions() -> None:
    """With N < D the sample covariance is singular and its pseudo-inverse separates every class in
    sample: informative features and pure noise both score C − 1 (up to rounding, whose sign then
    decides) — why the shrinkage estimate is the default."""
    rng = np.random.default_rng(1)
    labels = make_labels(rng, 60)
    informative, noise = make_features(rng, labels, 128), make_features(rng, labels, 128, separation=0.0)
    plain = FEATURE_SCORES["hscore_plain"]
    assert plain(informative, labels) == pytest.approx(C - 1, abs=1e-9)
    assert plain(noise, labels) == pytest.approx(C - 1, abs=1e-9)
    assert hscore(informative, labels) > hscore(noise, labels)  # the shrinkage estimate still ranks them


@pytest.mark.parametrize("name", sorted(SOURCE_SCORES))
def test_source_score_ranks_informative_source_first(name: str, data: dict) -> None:
    score = SOURCE_SCORES[name]
    assert score(data["probs_informative"], data["labels"]) > score(
        data["probs_random"], data["labels"]
    )


# --- exact values on hand-made inputs ------------------------------------------

BALANCED_BINARY = np.array([0, 0, 1, 1] * 25)
NEG_ENTROPY_BINARY = -np.log(2.0)


@pytest.mark.parametrize(
    "source, expected",
    [
        (np.zeros(100, dtype=int), NEG_ENTROPY_BINARY),  # constant source: −H(Y)
        (np.array([0, 1, 0, 1] * 25), NEG_ENTROPY_BINARY),  # independent of Y: −H(Y)
        (np.array([0, 1, 2, 3] * 25), 0.0),  # many source classes, Y determined: 0
    ],
    ids=["constant", "independent", "determined"],
)
def test_nce_matches_negative_conditional_entropy(source: np.ndarray, expected: float) -> None:
    assert nce(source, BALANCED_BINARY) == pytest.approx(expected, abs=1e-12)


def test_leep_of_uniform_source_probabilities_is_negative_label_entropy() -> None:
    uniform = np.full((len(BALANCED_BINARY), SOURCE_CLASSES), 1.0 / SOURCE_CLASSES)
    assert leep(uniform, BALANCED_BINARY) == pytest.approx(NEG_ENTROPY_BINARY, rel=1e-12)


def test_leep_of_one_hot_source_probabilities_equals_nce(data: dict) -> None:
    source = np.random.default_rng(4).integers(0, SOURCE_CLASSES, size=N)
    hard = np.eye(SOURCE_CLASSES)[source]
    assert leep(hard, data["labels"]) == pytest.approx(nce(source, data["labels"]), rel=1e-12)


def test_plain_hscore_of_noise_free_class_means_is_number_of_classes_minus_one(data: dict) -> None:
    means = np.random.default_rng(5).normal(size=(C, D))
    assert hscore(means[data["labels"]], data["labels"], shrinkage=False) == pytest.approx(C - 1)


# --- LogME: fast path vs dense evidence, and optimality -----------------------


@pytest.mark.parametrize("n, d", [(N, D), (48, 64)], ids=["N>D", "N<D"])
def test_logme_fast_path_matches_dense_evidence_at_a_local_maximum(n: int, d: int) -> None:
    rng = np.random.default_rng(2)
    labels = make_labels(rng, n)
    features = make_features(rng, labels, d, separation=0.5)
    score, params = logme(features, labels, return_params=True)
    targets = np.eye(C)[labels].T
    dense = [logme_evidence(features, y, a, b) for y, (a, b) in zip(targets, params)]
    assert score == pytest.approx(np.mean(dense) / n, rel=1e-6)
    for y, (alpha, beta), best in zip(targets, params, dense):
        for fa, fb in [(0.9, 1.0), (1.1, 1.0), (1.0, 0.9), (1.0, 1.1)]:
            assert logme_evidence(features, y, alpha * fa, beta * fb) < best


def test_logme_without_return_params_returns_the_same_float(data: dict) -> None:
    score, _ = logme(data["informative"], data["labels"], return_params=True)
    plain = logme(data["informative"], data["labels"])
    assert isinstance(plain, float) and plain == score


# --- invariance to the order of samples ---------------------------------------


def _permuted(args: tuple[np.ndarray, ...], seed: int = 3) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(len(args[0]))
    return tuple(a[order] for a in args)


@pytest.mark.parametrize("name", EXACT_FEATURE_SCORES)
def test_feature_score_is_invariant_to_sample_order(name: str, data: dict) -> None:
    args = (data["informative"], data["labels"])
    score = FEATURE_SCORES[name]
    assert score(*_permuted(args)) == pytest.approx(score(*args), rel=1e-8)


@pytest.mark.parametrize("name", sorted(SOURCE_SCORES))
def test_source_score_is_invariant_to_sample_order(name: str, data: dict) -> None:
    args = (data["probs_informative"], data["labels"])
    score = SOURCE_SCORES[name]
    assert score(*_permuted(args)) == pytest.approx(score(*args), rel=1e-8)


# --- reference accuracies -----------------------------------------------------


@pytest.mark.parametrize("reference", [knn_accuracy, linear_probe_accuracy])
def test_reference_accuracy_is_reproducible_and_near_perfect_on_separable_data(
    reference: Callable[..., float], data: dict
) -> None:
    first = reference(data["informative"], data["labels"], seed=5)
    assert first == reference(data["informative"], data["labels"], seed=5)
    assert 0.9 < first <= 1.0
    assert reference(data["noise"], data["labels"], seed=5) < 0.5


def test_reference_accuracy_needs_enough_samples_per_fold(data: dict) -> None:
    labels = data["labels"].copy()
    labels[np.flatnonzero(labels == 2)[3:]] = 0
    with pytest.raises(ValueError, match=re.escape("class 2 has only 3 samples; 5-fold CV")):
        knn_accuracy(data["informative"], labels)


# --- rank correlation helpers -------------------------------------------------


@pytest.mark.parametrize("tau", [kendall_tau, weighted_kendall_tau])
def test_rank_correlation_is_plus_or_minus_one_for_same_or_reversed_order(
    tau: Callable[..., float],
) -> None:
    accuracies = np.array([0.6, 0.7, 0.75, 0.8, 0.9])
    assert tau(accuracies * 10, accuracies) == pytest.approx(1.0)
    assert tau(-accuracies, accuracies) == pytest.approx(-1.0)


def test_weighted_tau_penalises_errors_at_the_top_more_than_at_the_bottom() -> None:
    accuracies = np.arange(6.0)
    top_swapped = np.array([0, 1, 2, 3, 5, 4.0])
    bottom_swapped = np.array([1, 0, 2, 3, 4, 5.0])
    assert kendall_tau(top_swapped, accuracies) == kendall_tau(bottom_swapped, accuracies)
    assert weighted_kendall_tau(top_swapped, accuracies) < weighted_kendall_tau(
        bottom_swapped, accuracies
    )


@pytest.mark.parametrize("tau", [kendall_tau, weighted_kendall_tau])
def test_rank_correlation_rejects_mismatched_lengths(tau: Callable[..., float]) -> None:
    with pytest.raises(ValueError, match="one length"):
        tau([0.1, 0.2, 0.3], [0.5, 0.6])


# --- input validation ---------------------------------------------------------


def _with_value_at_row(array: np.ndarray, row: int, value: float) -> np.ndarray:
    bad = array.copy()
    bad[row, 1] = value
    return bad


def _with_singleton_class(labels: np.ndarray) -> np.ndarray:
    bad = labels.copy()
    bad[7] = 3
    return bad


LABEL_CASES = {
    "single-sample class": (_with_singleton_class, "class 3 has only 1 sample; "),
    "one class": (np.zeros_like, "contain only 1 class; at least 2 are needed"),
    "mismatched lengths": (lambda labels: labels[:-1], "length mismatch: "),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
@pytest.mark.parametrize("name", sorted(FEATURE_SCORES))
def test_feature_score_rejects_bad_labels(name: str, case: str, data: dict) -> None:
    corrupt, message = LABEL_CASES[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        FEATURE_SCORES[name](data["informative"], corrupt(data["labels"]))


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
@pytest.mark.parametrize("name", sorted(SOURCE_SCORES))
def test_source_score_rejects_bad_labels(name: str, case: str, data: dict) -> None:
    corrupt, message = LABEL_CASES[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        SOURCE_SCORES[name](data["probs_informative"], corrupt(data["labels"]))


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("name", sorted(FEATURE_SCORES))
def test_feature_score_rejects_non_finite_features(name: str, value: float, data: dict) -> None:
    features = _with_value_at_row(data["informative"], 5, value)
    with pytest.raises(ValueError, match=re.escape("features contain NaN or inf at row 5")):
        FEATURE_SCORES[name](features, data["labels"])


@pytest.mark.parametrize("score", [leep, nce])
def test_source_score_rejects_probabilities_not_summing_to_one(
    score: Callable[..., float], data: dict
) -> None:
    probs = data["probs_informative"].copy()
    probs[4] *= 0.5
    with pytest.raises(ValueError, match=re.escape("rows must sum to 1; row 4 sums to 0.5")):
        score(probs, data["labels"])


@pytest.mark.parametrize("score", [leep, nce])
def test_source_score_rejects_non_finite_probabilities(
    score: Callable[..., float], data: dict
) -> None:
    with pytest.raises(ValueError, match=re.escape("contain NaN or inf at row 2")):
        score(_with_value_at_row(data["probs_informative"], 2, np.nan), data["labels"])


def test_logme_evidence_rejects_non_positive_precision(data: dict) -> None:
    y = (data["labels"] == 0).astype(float)
    with pytest.raises(ValueError, match="alpha and beta must be positive"):
        logme_evidence(data["informative"], y, 0.0, 1.0)
