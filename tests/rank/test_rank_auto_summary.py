"""auto's summary on hand-made results: τ per score against the accuracy reached, undefined τ as
None, whether each score's top pick was the most accurate, and how the report words few candidates."""

from __future__ import annotations

import pytest

from transferkit.config import FitConfig
from transferkit.evaluation.rank_report import auto_notes
from transferkit.rank.auto import best_validation_accuracy, pick_best, slug, summarise
from transferkit.rank.select import CandidateScores, Ranking


def ranking_of(scores: dict[str, dict[str, float]]) -> Ranking:
    candidates = [CandidateScores(model, "image", 8, values, 0.1, False, {}) for model, values in scores.items()]
    return Ranking("builtin:x", "image", 100, ["a", "b"], 0, candidates, {}, [])


def result(model: str, scores: dict[str, float], accuracy: float, rank: int) -> dict:
    return {"model": model, "scores": scores, "selection_rank": rank, "accuracy": accuracy, "macro_f1": accuracy,
            "val_accuracy": accuracy, "train_seconds": 1.0, "run_dir": f"RUN/candidates/{model}"}


SCORES = {"a": {"logme": 3.0, "leep": -1.0}, "b": {"logme": 2.0, "leep": -0.5}, "c": {"logme": 1.0, "leep": -0.1}}


def summary_for(accuracies: dict[str, float]) -> dict:
    results = [result(m, SCORES[m], accuracies[m], i) for i, m in enumerate(SCORES, start=1)]
    return summarise(ranking_of(SCORES), results, results[0], "logme", 3, FitConfig(data="builtin:x"))


def test_tau_is_plus_one_for_the_right_order_and_minus_one_for_the_reverse() -> None:
    summary = summary_for({"a": 0.9, "b": 0.8, "c": 0.7})
    assert summary["kendall_tau"] == {"logme": pytest.approx(1.0), "leep": pytest.approx(-1.0)}
    assert summary["weighted_tau"]["logme"] == pytest.approx(1.0)
    assert summary["score_picked_most_accurate"] == {"logme": True, "leep": False}
    assert summary["tau_n"] == {"logme": 3, "leep": 3}


def test_one_swapped_pair_of_three_gives_one_third() -> None:
    summary = summary_for({"a": 0.8, "b": 0.9, "c": 0.7})
    assert summary["kendall_tau"]["logme"] == pytest.approx(1 / 3)
    assert summary["score_picked_most_accurate"]["logme"] is False


def test_equal_accuracies_leave_tau_undefined() -> None:
    summary = summary_for({"a": 0.5, "b": 0.5, "c": 0.5})
    assert summary["kendall_tau"] == {"logme": None, "leep": None}
    assert summary["weighted_tau"] == {"logme": None, "leep": None}


def test_notes_say_how_coarse_tau_is_and_name_the_selection_effect() -> None:
    summary = {**summary_for({"a": 0.9, "b": 0.8, "c": 0.7}), "n_fine_tuned": 2, "n_candidates": 3}
    notes = " ".join(auto_notes(summary))
    assert "n = 2 fine-tuned" in notes and "(−1 or +1)" in notes and "selection effect" in notes
    three = " ".join(auto_notes(summary_for({"a": 0.9, "b": 0.8, "c": 0.7})))
    assert "one of only 4 values" in three and "selection effect" not in three


def test_validation_accuracy_is_read_at_the_restored_step(tmp_path) -> None:
    (tmp_path / "history.csv").write_text("epoch,step,val_accuracy\n1,10,0.7\n2,20,0.9\n3,30,0.8\n", encoding="utf-8")
    assert best_validation_accuracy(tmp_path, 20) == 0.9
    assert best_validation_accuracy(tmp_path, 30) == 0.8


def test_slug_makes_a_directory_name() -> None:
    assert slug("dir:/models/my bert@64") == "dir-models-my-bert-64"
    assert slug("efficientnet-lite1") == "efficientnet-lite1"


def test_best_is_chosen_on_validation_not_test_accuracy() -> None:
    first, second = result("a", {}, 0.9, 1), result("b", {}, 0.7, 2)
    first["val_accuracy"], second["val_accuracy"] = 0.6, 0.8
    assert pick_best([first, second])["model"] == "b"
    second["val_accuracy"] = 0.6  # a tie goes to the better-ranked candidate
    assert pick_best([second, first])["model"] == "a"
