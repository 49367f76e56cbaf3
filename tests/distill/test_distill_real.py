"""Distillation on the real packaged models (slow): a linear probe on MPNet-base teaches MiniLM-L6
on VADER movie snippets; the run must report all three models honestly and the artifact must load."""

from __future__ import annotations

import pytest

import transferkit

pytestmark = pytest.mark.slow

COMMON = dict(data="builtin:vader-movie", train_size=400, val_fraction=0.05, test_fraction=0.05, max_length=64,
              seed=0, quiet=True)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill_real")
    teacher = transferkit.fit(model="mpnet-base", strategy="linear-probe", epochs=10, skip_before=True,
                              out=str(root / "teacher"), **COMMON)
    return transferkit.distill(teacher.model_dir, "minilm-l6", temperature=2.0, alpha=0.5, epochs=1,
                               out=str(root / "run"), **COMMON)


def test_teacher_and_students_are_real_and_reported(real_run):
    metrics = real_run.metrics
    assert metrics["n_test"] == 528
    # Frozen MPNet features + a linear head: ~0.85 with 2,000 examples (ASSETS.md); far above chance with 400.
    assert metrics["teacher"]["accuracy"] > 0.75
    for name in ("student_plain", "student_distilled"):
        assert metrics[name]["accuracy"] > 0.62, name
        assert metrics[name]["agreement_with_teacher"] > 0.62, name
    assert metrics["teacher"]["parameters"] > 100_000_000 > 30_000_000 > metrics["student_distilled"]["parameters"]
    # A 5x smaller student is faster on the CPU.
    assert metrics["student_distilled"]["latency"]["examples_per_s_batch32"] > metrics["teacher"]["latency"]["examples_per_s_batch32"]
    assert (real_run.run_dir / "report.html").read_text().count("<table>") == 3


def test_distilled_minilm_artifact_reloads_with_its_teacher_recorded(real_run):
    predictor = transferkit.load(real_run.model_dir)
    assert predictor.meta["backbone"]["source"] == "minilm-l6"
    assert predictor.meta["distillation"]["teacher"].endswith("model")
    results = predictor.predict(["an utterly delightful, moving film", "a tedious, clumsy mess"])
    assert [r["label"] for r in results] == ["positive", "negative"]
