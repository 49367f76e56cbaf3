"""`transferkit update`: new versions, the forgetting ledger, growing heads, and each method."""

from __future__ import annotations

import csv
import json
import random

import pytest

import transferkit
from transferkit.cli.main import main
from transferkit.config import FitConfig
from transferkit.continual.ledger import Ledger
from transferkit.continual.memory import load_memory
from transferkit.continual.update import METHODS, UpdateOptions, forgetting_verdict, lineage, update
from transferkit.data.tables import read_table
from transferkit.errors import ConfigError, OutputExistsError
from transferkit.export.artifact import load_model

WORDS = {"pos": "good great fine", "neg": "bad awful poor", "meh": "okay average so-so"}


def _write(path, labels, n=90, seed=0):
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(n):
            label = labels[i % len(labels)]
            writer.writerow([f"the {rng.choice(WORDS[label].split())} film number {rng.randint(0, 99)}", label])
    return path


@pytest.fixture(scope="module")
def first_version(tmp_path_factory):
    root = tmp_path_factory.mktemp("continual")
    data = _write(root / "batch1.csv", ["pos", "neg"])
    result = transferkit.fit(data=str(data), model="tiny-bert", epochs=1, out=str(root / "v1"), quiet=True)
    return root, result.model_dir


def test_ledger_backward_transfer_and_forward_gain():
    ledger = Ledger()
    ledger.add_version("v1", "a", {"a": 0.90}, None)
    ledger.add_version("v2", "b", {"a": 0.80, "b": 0.70}, parent_on_new_batch=0.50)
    ledger.add_version("v3", "c", {"a": 0.85, "b": 0.60, "c": 0.9}, parent_on_new_batch=0.4)
    assert ledger.backward_transfer["v1"] is None
    assert ledger.backward_transfer["v2"] == pytest.approx(-0.10)
    assert ledger.backward_transfer["v3"] == pytest.approx(((0.85 - 0.90) + (0.60 - 0.70)) / 2)
    assert ledger.forward_gain["v2"] == pytest.approx(0.20)
    assert Ledger.from_dict(json.loads(json.dumps(ledger.to_dict()))) == ledger
    assert "| v2 | 0.8000 | 0.7000 | — | -0.1000 | +0.2000 |" in ledger.table()


@pytest.mark.parametrize("method", METHODS)
def test_each_method_makes_a_version_with_memory_and_ledger(first_version, method):
    root, v1 = first_version
    new = _write(root / f"batch2-{method}.csv", ["pos", "neg"], seed=1)
    result = update(v1, str(new), root / f"v2-{method}", UpdateOptions(method=method, replay_size=20), epochs=1, quiet=True)
    assert (result.version, result.parent) == ("v2", "v1")
    ledger = json.loads((result.model_dir / "ledger.json").read_text())
    assert ledger["versions"] == ["v1", "v2"] and ledger["batches"] == ["batch1", f"batch2-{method}"]
    assert set(ledger["accuracy"]["v2"]) == set(ledger["batches"])
    memory = load_memory(result.model_dir)
    assert [len(b.replay) for b in memory.batches] == [20, 20]
    reloaded = transferkit.load(result.model_dir)
    assert reloaded.meta["version"] == "v2" and reloaded.meta["parent"] == "v1"
    assert reloaded.meta["strategy"] == f"update:{method}"


def test_new_classes_grow_the_head_and_keep_old_rows(first_version):
    root, v1 = first_version
    new = _write(root / "batch3.csv", ["pos", "neg", "meh"], seed=2)
    before = transferkit.load(v1).model.head.linear
    result = update(v1, str(new), root / "v2-grow", UpdateOptions(method="naive"), epochs=1, lr=1e-9, head_lr=1e-9,
                    quiet=True)
    after = transferkit.load(result.model_dir)
    assert after.label_names == ["neg", "pos", "meh"]
    grown = after.model.head.linear
    assert grown.out_features == 3
    assert (grown.weight[:2] - before.weight).abs().max() < 1e-6  # tiny lr: old rows essentially unchanged


def test_second_update_extends_the_lineage(first_version):
    root, v1 = first_version
    b2 = _write(root / "b2.csv", ["pos", "neg"], seed=3)
    v2 = update(v1, str(b2), root / "lineage-v2", UpdateOptions(method="replay", replay_size=10), epochs=1, quiet=True)
    b3 = _write(root / "b3.csv", ["pos", "neg"], seed=4)
    v3 = update(v2.model_dir, str(b3), root / "lineage-v3", UpdateOptions(method="ewc", replay_size=10), epochs=1, quiet=True)
    assert v3.ledger.versions == ["v1", "v2", "v3"] and v3.ledger.batches == ["batch1", "b2", "b3"]
    assert v3.ledger.accuracy["v1"] == v2.ledger.accuracy["v1"]  # history is carried, not recomputed


def test_the_forgetting_limit_is_inclusive_and_says_why():
    assert forgetting_verdict(0.90 - 0.92, 0.02)[0]  # −0.0200000000000000018: not worse than 2 points
    assert forgetting_verdict(None, 0.0)[0]
    promotable, reason = forgetting_verdict(-0.05, 0.02)
    assert not promotable
    assert reason.startswith("backward transfer -0.0500 is worse than --max-forgetting 0.0200")


def test_the_first_update_remembers_exactly_the_saved_test_split(tmp_path):
    # Non-default fractions and a subsampled train split: re-splitting with defaults would differ.
    data = _write(tmp_path / "own.csv", ["pos", "neg"], n=60, seed=8)
    fitted = transferkit.fit(data=str(data), model="tiny-bert", epochs=1, test_fraction=0.3, val_fraction=0.2,
                             train_size=20, seed=3, skip_before=True, out=str(tmp_path / "v1"), quiet=True)
    cfg = FitConfig(data=str(data), quiet=True)
    parent = lineage(*load_model(fitted.model_dir), cfg, UpdateOptions(replay_size=500), "v1", "fp")
    split = json.loads((fitted.model_dir / "split.json").read_text())
    raw = read_table(data, "text", "label")
    row = {example_id: i for i, example_id in enumerate(raw.ids)}
    first = parent.memory.batches[0]
    assert first.test.items == [raw.items[row[i]] for i in split["test"]]
    assert first.test.labels == [raw.labels[row[i]] for i in split["test"]]
    assert len(first.test) == 18 and len(first.replay) == 20  # 30% of 60; the whole 20-example train split
    assert set(first.replay.items) <= {raw.items[row[i]] for i in split["train"]}


def test_an_artifact_fitted_on_train_and_test_files_can_be_updated(tmp_path):
    train_file = _write(tmp_path / "train.csv", ["pos", "neg"], n=60, seed=9)
    test_file = _write(tmp_path / "test.csv", ["pos", "neg"], n=14, seed=10)
    fitted = transferkit.fit(train=str(train_file), test=str(test_file), model="tiny-bert", epochs=1, skip_before=True,
                             out=str(tmp_path / "v1"), quiet=True)
    new = _write(tmp_path / "next.csv", ["pos", "neg"], seed=11)
    result = update(fitted.model_dir, str(new), tmp_path / "v2", UpdateOptions(method="naive"), epochs=1, quiet=True)
    first = load_memory(result.model_dir).batches[0]
    assert first.name == "train" and first.test.items == read_table(test_file, "text", "label").items
    assert result.ledger.batches == ["train", "next"]


def test_update_writes_its_report_and_overwrite_really_clears_the_run(first_version):
    root, v1 = first_version
    new = _write(root / "report.csv", ["pos", "neg"], seed=12)
    out = root / "report-run"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    with pytest.raises(OutputExistsError, match="not empty"):
        update(v1, str(new), out, UpdateOptions(method="naive"), epochs=1, quiet=True)
    result = update(v1, str(new), out, UpdateOptions(method="naive"), epochs=1, quiet=True, overwrite=True)
    assert not (out / "stale.txt").exists()
    report = (out / "report.md").read_text()
    assert "| version | batch1 | report | backward transfer | forward gain |" in report
    bwt = result.ledger.backward_transfer["v2"]
    assert f"| v2 | {result.ledger.accuracy['v2']['batch1']:.4f} |" in report and f"{bwt:+.4f}" in report
    assert "promotable" in report.splitlines()[2]
    assert "<table>" in (out / "report.html").read_text()
    assert json.loads((out / "ledger.json").read_text()) == result.ledger.to_dict()
    split = json.loads((result.model_dir / "split.json").read_text())
    assert split["sizes"]["test"] == len(load_memory(result.model_dir).batches[1].test)


def test_overwrite_never_deletes_the_model_being_updated(first_version):
    root, v1 = first_version
    new = _write(root / "clobber.csv", ["pos", "neg"], seed=13)
    with pytest.raises(ConfigError, match="overlaps the model being updated"):
        update(v1, str(new), v1.parent, UpdateOptions(method="naive"), epochs=1, quiet=True, overwrite=True)
    assert (v1 / "transferkit.json").is_file()


def test_cli_update_prints_the_ledger(first_version, capsys):
    root, v1 = first_version
    new = _write(root / "cli.csv", ["pos", "neg"], seed=6)
    assert main(["update", "--model", str(v1), "--data", str(new), "--out", str(root / "cli-v2"), "--method", "lwf",
                 "--lwf-weight", "0.5", "--temperature", "3", "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| v2 |" in out and "promotable" in out.splitlines()[-1]
    meta = transferkit.load(root / "cli-v2" / "model").meta
    assert (meta["update"]["lwf_weight"], meta["update"]["temperature"]) == (0.5, 3.0)
    assert "lwf (weight 0.5, temperature 3.0)" in (root / "cli-v2" / "report.md").read_text()


def test_bad_update_options(first_version, tmp_path):
    _, v1 = first_version
    with pytest.raises(ConfigError, match="unknown update method"):
        UpdateOptions(method="magic")
    with pytest.raises(ConfigError, match="temperature > 0"):
        UpdateOptions(method="lwf", temperature=0)
    assert main(["update", "--model", str(tmp_path), "--data", "x.csv", "--out", str(tmp_path / "o")]) == 2
    assert main(["update", "--model", str(v1), "--from", "v1", "--data", "x.csv"]) == 2
    assert main(["update", "--model", str(v1), "--data", "x.csv", "--lwf-weight", "-1"]) == 2
