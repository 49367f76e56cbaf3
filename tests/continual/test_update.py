"""`transferkit update`: new versions, the forgetting ledger, growing heads, and each method."""

from __future__ import annotations

import csv
import json
import random

import pytest

import transferkit
from transferkit.cli.main import main
from transferkit.continual.ledger import Ledger
from transferkit.continual.memory import load_memory
from transferkit.continual.update import METHODS, UpdateOptions, update
from transferkit.errors import ConfigError

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


def test_forgetting_beyond_the_limit_is_not_promotable(first_version):
    root, v1 = first_version
    new = _write(root / "flip.csv", ["pos", "neg"], seed=5)
    # max_forgetting=0 and a large step: any drop on batch1 refuses promotion, and says why.
    result = update(v1, str(new), root / "v2-strict", UpdateOptions(method="naive", max_forgetting=0.0),
                    epochs=1, lr=5e-2, head_lr=5e-2, quiet=True)
    bwt = result.ledger.backward_transfer["v2"]
    assert result.promotable == (bwt >= 0)
    assert ("not promoted" in result.reason) == (not result.promotable)


def test_cli_update_prints_the_ledger(first_version, capsys):
    root, v1 = first_version
    new = _write(root / "cli.csv", ["pos", "neg"], seed=6)
    assert main(["update", "--model", str(v1), "--data", str(new), "--out", str(root / "cli-v2"), "--method", "lwf",
                 "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| v2 |" in out and "promotable" in out


def test_bad_update_options(first_version, tmp_path):
    _, v1 = first_version
    with pytest.raises(ConfigError, match="unknown update method"):
        UpdateOptions(method="magic")
    assert main(["update", "--model", str(tmp_path), "--data", "x.csv", "--out", str(tmp_path / "o")]) == 2
