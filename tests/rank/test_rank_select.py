"""rank_models on tiny models: the sample is fit's training split, scores are computed on the right
features, LEEP/NCE appear exactly when a model has a source classifier, ranks and agreement follow
the scores, and the feature cache is used.

The tiny models are random-init: no test here judges which model is better, only that the ranking
is computed consistently (the real-model judgements are in test_rank_real_models.py).
"""

from __future__ import annotations

import json

import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

import transferkit.features as features_module
from conftest import make_sentences, write_csv, write_image_folder
from transferkit.data import prepare_task_data
from transferkit.errors import ConfigError
from transferkit.evaluation.metrics import softmax
from transferkit.inference import backbone_features
from transferkit.rank import hscore, knn_accuracy, leep, logme, nce
from transferkit.rank.select import Candidate, parse_candidates, rank_models
from transferkit.zoo import ZOO, ZooEntry, load_backbone
from transferkit.zoo.vision import TinyCNNBackbone

SOURCE_CLASSES = 7


class HeadedCNN(TinyCNNBackbone):
    """A tiny CNN with its own 7-class 'source' classifier, like EfficientNet's ImageNet head."""

    def __init__(self, image_size: int = 32) -> None:
        torch.manual_seed(1)
        super().__init__(source="headed-cnn", image_size=image_size)
        self.classifier = nn.Linear(self.feature_dim, SOURCE_CLASSES)

    def source_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("TRANSFERKIT_THREADS", "1")
    monkeypatch.setitem(ZOO, "headed-cnn", ZooEntry(
        name="headed-cnn", modality="image", description="test model with a source head", packages=(),
        build=lambda image_size=32: HeadedCNN(image_size), is_installed=lambda: True, weights_path=lambda: None,
        pretrained=False))


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory: pytest.TempPathFactory):
    return write_csv(tmp_path_factory.mktemp("text") / "reviews.csv", make_sentences(150, seed=5))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory):
    return write_image_folder(tmp_path_factory.mktemp("img") / "images", per_class=20)


def sample_of(data: str, sample: int):
    """The training split fit would use with train_size=sample (what ranking must score)."""
    return prepare_task_data(data, train_size=sample, seed=0).train


def test_candidate_specs_parse_sizes_and_reject_repeats() -> None:
    assert Candidate.parse("tiny-cnn@48") == Candidate("tiny-cnn@48", "tiny-cnn", 48)
    assert Candidate.parse("dir:/m/x@y") == Candidate("dir:/m/x@y", "dir:/m/x@y", None)
    assert [c.model for c in parse_candidates(" minilm-l6, mpnet-base ,")] == ["minilm-l6", "mpnet-base"]
    with pytest.raises(ConfigError, match="listed twice: tiny-bert"):
        parse_candidates("tiny-bert,tiny-cnn,tiny-bert")
    with pytest.raises(ConfigError, match="no candidate"):
        parse_candidates(",")


def test_text_ranking_scores_the_training_sample_without_source_scores(text_csv) -> None:
    ranking = rank_models("tiny-bert@8,tiny-bert", data=str(text_csv), sample=60, quiet=True)
    split = sample_of(str(text_csv), 60)
    assert ranking.sample == len(split) == 60 and ranking.modality == "text"
    assert ranking.metrics == ["logme", "hscore", "knn"]
    for result in ranking.candidates:
        assert set(result.scores) == {"logme", "hscore", "knn"}
        assert any("LEEP/NCE skipped" in note for note in result.notes)
        size = 8 if result.model == "tiny-bert@8" else 128
        features = backbone_features(load_backbone("tiny-bert", max_length=size), split.items)
        assert result.scores["logme"] == pytest.approx(logme(features, split.targets), rel=1e-6)
        assert result.scores["hscore"] == pytest.approx(hscore(features, split.targets), rel=1e-6)
        assert result.scores["knn"] == pytest.approx(knn_accuracy(features, split.targets))
        assert result.feature_dim == 32 and result.seconds >= 0
    assert any("LEEP and NCE" in note and "none is invented" in note for note in ranking.notes)


def test_source_head_gives_leep_and_nce_on_its_probabilities(images) -> None:
    ranking = rank_models(["headed-cnn", "tiny-cnn"], data=str(images), sample=None, quiet=True)
    by_model = {r.model: r for r in ranking.candidates}
    assert set(by_model["headed-cnn"].scores) == {"logme", "hscore", "nce", "leep", "knn"}
    assert "leep" not in by_model["tiny-cnn"].scores and "nce" not in by_model["tiny-cnn"].scores
    split = prepare_task_data(str(images), seed=0).train
    backbone = load_backbone("headed-cnn")
    features = backbone_features(backbone, split.items)
    with torch.inference_mode():
        probs = softmax(backbone.classifier(torch.from_numpy(features)).double().numpy())
    assert by_model["headed-cnn"].scores["leep"] == pytest.approx(leep(probs, split.targets), rel=1e-6)
    assert by_model["headed-cnn"].scores["nce"] == pytest.approx(nce(probs, split.targets), rel=1e-6)
    assert by_model["headed-cnn"].ranks["leep"] == 1 and "leep" not in by_model["tiny-cnn"].ranks
    assert [n for n in ranking.notes if "absent for tiny-cnn:" in n]


def test_ranks_and_agreement_follow_the_scores(images) -> None:
    ranking = rank_models("tiny-cnn@16,tiny-cnn@24,tiny-cnn@40,headed-cnn", data=str(images), sample=30, quiet=True)
    for name in ranking.metrics:
        having = [r for r in ranking.candidates if name in r.scores]
        for a in having:
            better = sum(b.scores[name] > a.scores[name] for b in having)
            assert a.ranks[name] == better + 1
    logmes = [r.scores["logme"] for r in ranking.candidates]
    assert logmes == sorted(logmes, reverse=True)  # ordered by LogME
    expected = kendalltau([r.scores["logme"] for r in ranking.candidates],
                          [r.scores["hscore"] for r in ranking.candidates]).statistic
    assert ranking.agreement["logme"]["hscore"] == pytest.approx(expected)
    assert ranking.agreement["hscore"]["logme"] == ranking.agreement["logme"]["hscore"]
    assert "n = 4 candidates" in " ".join(ranking.notes)


def test_features_come_from_and_go_to_the_cache(text_csv, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))
    calls = []
    monkeypatch.setattr(features_module, "backbone_features",
                        lambda backbone, items, batch_size=64: calls.append(len(items)) or backbone_features(backbone, items))
    first = rank_models("tiny-bert,tiny-bert@16", data=str(text_csv), sample=40, quiet=True)
    second = rank_models("tiny-bert,tiny-bert@16", data=str(text_csv), sample=40, quiet=True)
    assert calls == [40, 40]  # the second ranking computed nothing
    assert [r.cached for r in first.candidates] == [False, False]
    assert [r.cached for r in second.candidates] == [True, True]
    assert [r.scores for r in first.candidates] == [r.scores for r in second.candidates]


def test_knn_is_absent_with_a_reason_when_a_class_is_too_small_for_cross_validation(text_csv) -> None:
    ranking = rank_models("tiny-bert,tiny-bert@8", data=str(text_csv), sample=8, quiet=True)
    assert ranking.metrics == ["logme", "hscore"]
    assert all(any("knn skipped" in n for n in r.notes) for r in ranking.candidates)


def test_ranking_json_written_with_out(text_csv, tmp_path) -> None:
    rank_models("tiny-bert,tiny-bert@8", data=str(text_csv), sample=40, out=tmp_path / "r", quiet=True)
    saved = json.loads((tmp_path / "r" / "ranking.json").read_text())
    assert set(saved) >= {"data", "sample", "classes", "metrics", "candidates", "agreement", "notes"}
    for candidate in saved["candidates"]:
        assert set(candidate) >= {"model", "scores", "seconds", "ranks", "cached", "notes"}
        assert set(candidate["scores"]) <= {"logme", "hscore", "nce", "leep", "knn"}
    assert "| tiny-bert |" in (tmp_path / "r" / "report.md").read_text()
    assert "<table>" in (tmp_path / "r" / "report.html").read_text()


def test_regression_is_refused(text_csv) -> None:
    with pytest.raises(ConfigError, match="classification"):
        rank_models("tiny-bert", data=str(text_csv), task="regression")

