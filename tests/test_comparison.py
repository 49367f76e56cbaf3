"""`transferkit compare`: strategy lists, the bootstrap from confusion matrices, the summary, and a
small end-to-end comparison (each run in its own process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from transferkit.cli.main import main
from transferkit.comparison import RECORD_FIELDS, compare, split_strategies
from transferkit.errors import ConfigError, OutputExistsError
from transferkit.evaluation.strategy_report import confusion_bootstrap, summarise, table_rows


def test_split_strategies_keeps_options_with_their_strategy():
    text = "linear-probe,freeze-bottom:4,lora:r=4,alpha=8,full+l2sp:alpha=0.1,beta=0.01,head-then-full,ia3"
    assert split_strategies(text) == ["linear-probe", "freeze-bottom:4", "lora:r=4,alpha=8", "full+l2sp:alpha=0.1,beta=0.01",
                                      "head-then-full", "ia3"]


def test_confusion_bootstrap_brackets_the_point_estimates():
    matrix = [[40, 10, 0], [5, 30, 5], [2, 3, 15]]
    ci = confusion_bootstrap(matrix, n_resamples=500)
    true = np.repeat([0, 0, 1, 1, 1, 2, 2, 2], [40, 10, 5, 30, 5, 2, 3, 15])
    pred = np.array([0] * 40 + [1] * 10 + [0] * 5 + [1] * 30 + [2] * 5 + [0] * 2 + [1] * 3 + [2] * 15)
    accuracy, macro_f1 = float((true == pred).mean()), f1_score(true, pred, average="macro")
    assert ci["accuracy_ci95"][0] < accuracy < ci["accuracy_ci95"][1]
    assert ci["macro_f1_ci95"][0] < macro_f1 < ci["macro_f1_ci95"][1]
    assert ci["accuracy_ci95"][1] - ci["accuracy_ci95"][0] < 0.2
    assert confusion_bootstrap([[10, 0], [0, 10]]) == {"accuracy_ci95": [1.0, 1.0], "macro_f1_ci95": [1.0, 1.0]}


def _record(strategy: str, seed: int, accuracy: float) -> dict:
    return {"strategy": strategy, "seed": seed, "accuracy": accuracy, "macro_f1": accuracy - 0.1, "trainable_params": 10,
            "total_params": 1000, "train_seconds": 2.0 + seed, "peak_memory_mb": 500.0, "artifact_mb": 1.5,
            "accuracy_ci95": [accuracy - 0.05, accuracy + 0.05], "macro_f1_ci95": [accuracy - 0.15, accuracy - 0.05]}


def test_summary_mean_and_std_over_seeds_and_ci_for_one_seed():
    records = [_record("full", 0, 0.80), _record("full", 1, 0.84), _record("lora", 0, 0.79)]
    full, lora = summarise(records)
    assert full["n_seeds"] == 2 and full["accuracy_mean"] == pytest.approx(0.82)
    assert full["accuracy_std"] == pytest.approx(np.std([0.80, 0.84], ddof=1))
    assert lora["accuracy_ci95"] == pytest.approx([0.74, 0.84])
    rows = table_rows([full, lora])
    assert rows[0][1] == "0.8200 ± 0.0283" and rows[0][3] == "10 / 1,000 (1.00%)"
    assert rows[1][1] == "0.7900 [0.7400, 0.8400]"


def test_compare_end_to_end(text_csv, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--strategies", "linear-probe,lora:r=2,alpha=4", "--data", str(text_csv), "--model", "tiny-bert",
            "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    records = json.loads((out / "compare.json").read_text())
    assert [(r["strategy"], r["seed"]) for r in records] == [("linear-probe", 0), ("lora:r=2,alpha=4", 0)]
    for record in records:
        assert set(RECORD_FIELDS) <= set(record)
        assert 0 <= record["accuracy"] <= 1 and record["peak_memory_mb"] > 100 and record["artifact_mb"] > 0
        assert record["trainable_params"] < record["total_params"]
    probe, lora = records
    # the head, plus LoRA on 2 layers × (query, value): r × (in + out) each
    assert probe["trainable_params"] == 66 and lora["trainable_params"] == 66 + 2 * 2 * 2 * (32 + 32)
    assert lora["artifact_mb"] < probe["artifact_mb"]  # adapter-only vs full encoder
    report = (out / "report.md").read_text()
    assert "| lora:r=2,alpha=4 |" in report and (out / "accuracy_vs_params.png").stat().st_size > 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(argv) == 2  # an existing comparison is never replaced silently
    assert json.loads((out / "compare.json").read_text()) == records
    # --resume keeps the finished runs (nothing is re-run: the records are the very same)
    result = compare("linear-probe,lora:r=2,alpha=4", 1, out, resume=True, data=str(text_csv), model="tiny-bert",
                     epochs=1, quiet=True)
    assert result.records == records


def test_compare_over_two_seeds_reports_mean_and_std_and_each_parameter_count(text_csv, tmp_path, capfd):
    out = tmp_path / "cmp"
    result = compare("head-then-full", 2, out, data=str(text_csv), model="tiny-bert", epochs=2)
    log = capfd.readouterr().err  # the runs' own processes write to the same stderr
    records = json.loads((out / "compare.json").read_text())
    assert [(r["strategy"], r["seed"]) for r in records] == [("head-then-full", 0), ("head-then-full", 1)]
    # Each run says what trains when it starts (the head); compare then says what it trained in all.
    metrics = json.loads((Path(records[0]["run_dir"]) / "metrics.json").read_text())
    assert log.count(f"{metrics['trainable_params_at_start']:,} of {metrics['total_params']:,} parameters trainable") == 2
    assert log.count(f"{records[0]['trainable_params']:,} of {records[0]['total_params']:,} parameters trained (") == 2
    # head-then-full starts with the head only but ends training every used parameter: that is what it costs.
    assert records[0]["trainable_params"] == metrics["trainable_params"] > 100 * metrics["trainable_params_at_start"]
    summary = {entry["strategy"]: entry for entry in result.summary}
    accuracies = [r["accuracy"] for r in records if r["strategy"] == "head-then-full"]
    assert summary["head-then-full"]["accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert summary["head-then-full"]["accuracy_std"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2 ** 0.5)
    assert "±" in (out / "report.md").read_text()


@pytest.mark.parametrize("strategies, options, error, message", [
    ("full,nope", {}, ConfigError, "unknown strategy 'nope'"),
    ("full,full", {}, ConfigError, "different strategies"),
    ("linear-probe,prefix", {"model": "tiny-cnn"}, ConfigError, "strategy prefix does not apply to image backbones"),
    ("full", {"out_of_place": 1}, ConfigError, "unknown option"),
    ("full", {"strategy": "lora"}, ConfigError, "compare sets strategy itself"),
])
def test_bad_input_fails_before_any_run(strategies, options, error, message, text_csv, image_folder, tmp_path):
    data = image_folder if options.get("model") == "tiny-cnn" else text_csv
    with pytest.raises(error, match=message):
        compare(strategies, 1, tmp_path / "cmp", **{"data": str(data), "model": "tiny-bert", **options})
    assert not (tmp_path / "cmp").exists()


def test_a_non_empty_output_directory_is_refused(text_csv, tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        compare("linear-probe", 1, tmp_path / "cmp", data=str(text_csv), model="tiny-bert", quiet=True)
