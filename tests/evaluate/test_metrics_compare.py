"""Task metrics against scikit-learn and hand-computed values; the paired bootstrap and the
plain-language verdict built on it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from transferkit.evaluation.compare import bootstrap_ci, paired_bootstrap_delta, verdict
from transferkit.evaluation.metrics import classification_metrics, headline, regression_metrics, softmax

# Hand example: 3 classes, 8 examples; class 2 is never predicted.
TARGETS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
PREDICTIONS = np.array([0, 0, 1, 1, 1, 0, 1, 0])
LABELS = ["neg", "neu", "pos"]


def one_hot_logits(predictions: np.ndarray, classes: int) -> np.ndarray:
    logits = np.random.default_rng(0).normal(0, 0.1, (len(predictions), classes))
    logits[np.arange(len(predictions)), predictions] += 5
    return logits


def test_classification_metrics_match_sklearn_and_hand_values():
    metrics = classification_metrics(TARGETS, one_hot_logits(PREDICTIONS, 3), LABELS)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(TARGETS, PREDICTIONS)) == pytest.approx(4 / 8)
    assert metrics["macro_f1"] == pytest.approx(f1_score(TARGETS, PREDICTIONS, average="macro", zero_division=0))
    # By hand: F1(neg) = 2·(2/4)·(2/3)/(2/4+2/3) = 4/7, F1(neu) = 2·(2/4)·(2/3)/(…) = 4/7, F1(pos) = 0.
    assert metrics["macro_f1"] == pytest.approx((4 / 7 + 4 / 7 + 0) / 3)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [1, 2, 0], [1, 1, 0]]
    assert metrics["per_class"]["pos"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert metrics["per_class"]["neg"]["precision"] == pytest.approx(2 / 4)
    assert metrics["n"] == 8
    assert headline("classification", metrics) == {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


@pytest.mark.parametrize("classes", [2, 5])
def test_confusion_matrix_covers_every_class_even_if_absent(classes):
    targets = np.zeros(4, dtype=int)
    metrics = classification_metrics(targets, one_hot_logits(targets, classes), [f"c{i}" for i in range(classes)])
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (classes, classes) and matrix.sum() == 4 and matrix[0, 0] == 4
    assert metrics["accuracy"] == 1.0


def test_regression_metrics_hand_example():
    targets = np.array([1.0, 2.0, 3.0, 4.0])
    predictions = np.array([[1.5], [2.0], [2.0], [5.0]])  # [N, 1], as the regression head returns
    metrics = regression_metrics(targets, predictions)
    assert metrics["mae"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert metrics["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert metrics["r2"] == pytest.approx(1 - 2.25 / 5.0)
    assert metrics["spearman"] == pytest.approx(0.9486833)  # ties in predictions: average ranks
    assert metrics["n"] == 4


def test_regression_metrics_perfect_and_constant_predictions():
    targets = np.linspace(-2, 2, 9)
    perfect = regression_metrics(targets, targets.copy())
    assert perfect["mae"] == perfect["rmse"] == 0 and perfect["spearman"] == pytest.approx(1) and perfect["r2"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the training-mean baseline is constant: no scipy warning
        constant = regression_metrics(targets, np.zeros_like(targets))
    assert constant["spearman"] == 0.0  # undefined correlation is reported as 0, not NaN
    assert np.isfinite(list(v for k, v in constant.items() if k != "n")).all()


def test_softmax_rows_sum_to_one_and_are_stable():
    probabilities = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(probabilities, [[0.5, 0.5], [0.25, 0.75]])


# --- paired bootstrap ---------------------------------------------------------------------------
def correctness(n: int, accuracy: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < accuracy).astype(float)


@pytest.mark.parametrize("n,before_acc,after_acc", [(60, 0.6, 0.7), (400, 0.8, 0.75), (1000, 0.5, 0.5)])
def test_ci_contains_the_mean(n, before_acc, after_acc):
    before, after = correctness(n, before_acc, 1), correctness(n, after_acc, 2)
    delta = paired_bootstrap_delta(before, after, seed=0)
    low, high = delta["ci95"]
    assert delta["mean"] == pytest.approx(after.mean() - before.mean())
    assert low <= delta["mean"] <= high and low < high
    assert delta == paired_bootstrap_delta(before, after, seed=0)  # seeded


def test_ci_narrows_with_more_examples():
    widths = []
    for n in (50, 500, 5000):
        before, after = correctness(n, 0.7, n), correctness(n, 0.75, n + 1)
        low, high = paired_bootstrap_delta(before, after, seed=0)["ci95"]
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] > 5  # roughly sqrt(100) = 10


def test_pairing_makes_the_ci_tighter_than_unpaired_scores():
    # AFTER fixes 10% of examples and breaks none: a paired CI is narrow and clearly positive.
    before = correctness(300, 0.6, 3)
    after = before.copy()
    wrong = np.flatnonzero(before == 0)
    after[wrong[: 30]] = 1
    delta = paired_bootstrap_delta(before, after, seed=0)
    assert delta["ci95"][0] > 0
    unpaired = bootstrap_ci(after)[0] - bootstrap_ci(before)[1]
    assert unpaired < 0  # the two separate CIs overlap, yet the paired test sees the gain


def test_identical_vectors_give_zero():
    scores = correctness(100, 0.7, 4)
    assert paired_bootstrap_delta(scores, scores.copy()) == {"mean": 0.0, "ci95": [0.0, 0.0], "n_resamples": 2000}


@pytest.mark.parametrize("before,after", [([1, 0], [1]), ([], []), ([[1, 0]], [[0, 1]])])
def test_mismatched_or_empty_vectors_are_refused(before, after):
    with pytest.raises(ValueError):
        paired_bootstrap_delta(np.array(before), np.array(after))


def test_bootstrap_ci_contains_the_mean():
    scores = correctness(200, 0.7, 5)
    low, high = bootstrap_ci(scores)
    assert low < scores.mean() < high


@pytest.mark.parametrize("ci,expected", [
    ((0.02, 0.09), "AFTER is better: accuracy +0.050 (95% CI +0.020 to +0.090)."),
    ((-0.09, -0.02), "AFTER is WORSE than BEFORE: accuracy +0.050 (95% CI -0.090 to -0.020)."),
    ((-0.01, 0.11), "AFTER is not clearly better: accuracy +0.050, and the 95% CI (-0.010 to +0.110) includes zero."),
    ((0.0, 0.0), "AFTER is not clearly better: accuracy +0.050, and the 95% CI (+0.000 to +0.000) includes zero."),
])
def test_verdict_wording(ci, expected):
    assert verdict({"mean": 0.05, "ci95": list(ci)}) == expected


def test_verdict_names_the_metric_and_reads_real_deltas():
    before, after = np.zeros(200), np.ones(200)
    assert verdict(paired_bootstrap_delta(before, after), "MAE reduction").startswith("AFTER is better: MAE reduction +1.000")
    assert "WORSE" in verdict(paired_bootstrap_delta(after, before))
    assert "includes zero" in verdict(paired_bootstrap_delta(after, after))
