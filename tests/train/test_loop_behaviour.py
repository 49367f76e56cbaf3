"""The training loop's promises: same seed → same weights on CPU, early stopping that restores the
best validated weights, and validation every N steps.

Where the tiny random-init model cannot be relied on to get worse on validation, the validation
*metric* is scripted (monkeypatched) while the real validation still runs, so the loop's choice
of the best weights can be checked against what was really measured.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import one_torch_thread
import transferkit
from transferkit.cli.main import main
from transferkit.config import FitConfig
from transferkit.data import prepare_task_data
from transferkit.data.batching import EncodedDataset, make_collate
from transferkit.heads import make_head
from transferkit.model import TransferModel
from transferkit.strategies import parse_strategy
from transferkit.train import loop
from transferkit.zoo import load_backbone


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def fit_tiny(data: Path, out: Path, **options) -> transferkit.FitResult:
    settings = dict(model="tiny-bert", strategy="full", epochs=2, seed=0, quiet=True)
    return transferkit.fit(data=str(data), out=str(out), **{**settings, **options})


def read_history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def head_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "head.safetensors"))


def encoder_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "encoder" / "model.safetensors"))


def all_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def build_training(data: Path, **options):
    """What `run_fit` hands to `train()`, built the same way (tiny-bert, full fine-tuning)."""
    cfg = FitConfig(data=str(data), model="tiny-bert", strategy="full", quiet=True, **options)
    task_data = prepare_task_data(cfg.data, seed=cfg.seed)
    backbone = load_backbone(cfg.model)
    torch.manual_seed(cfg.seed)
    head = make_head(task_data.task, backbone.feature_dim, task_data.num_outputs, cfg.dropout, task_data.train.targets)
    model = TransferModel(backbone, head)
    strategy = parse_strategy(cfg.strategy)
    pre = backbone.preprocessor
    train_set = EncodedDataset.build(pre, task_data.train.items, task_data.train.targets)
    val_set = EncodedDataset.build(pre, task_data.val.items, task_data.val.targets)
    return cfg, task_data, model, strategy, train_set, val_set, make_collate(pre)


class ScriptedValidation:
    """Runs the real validation, remembers its values and the weights, reports a scripted metric."""

    def __init__(self, script: list[float]) -> None:
        self.script = script
        self.real: list[dict[str, float]] = []
        self.weights: list[dict[str, torch.Tensor]] = []
        self.original = loop.validate

    def __call__(self, core, dataset, *args, **kwargs):
        values = self.original(core, dataset, *args, **kwargs)
        self.real.append(dict(values))
        self.weights.append({k: v.detach().clone() for k, v in core.state_dict().items()})
        values["accuracy"] = self.script[len(self.real) - 1]
        return values


# --- the Python API ----------------------------------------------------------------------------


def test_public_api_names_stay_functions_after_submodule_imports() -> None:
    """`transferkit.fit(...)`, `transferkit.evaluate(...)` and `transferkit.load(...)` are the documented
    API; importing the package's submodules (as the CLI and the loop do) must not shadow them."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(transferkit.__path__):
        importlib.import_module(f"transferkit.{module.name}")
    for _ in range(2):  # a second access must give the same answer as the first
        for name in ("fit", "evaluate", "load"):
            value = getattr(transferkit, name)
            assert callable(value) and getattr(value, "__name__", None) == name, f"transferkit.{name} is {value!r}"
    assert isinstance(transferkit.FitConfig(data="x.csv"), transferkit.FitConfig)


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_bit_identical_weights(text_csv: Path, tmp_path: Path) -> None:
    first = fit_tiny(text_csv, tmp_path / "a", seed=7)
    second = fit_tiny(text_csv, tmp_path / "b", seed=7)
    assert all_equal(head_tensors(first.run_dir), head_tensors(second.run_dir))
    assert all_equal(encoder_tensors(first.run_dir), encoder_tensors(second.run_dir))
    assert first.metrics["after"] == second.metrics["after"]
    assert read_history(first.run_dir) == read_history(second.run_dir)
    # ... and the seed matters (otherwise the equality above proves nothing).
    other = fit_tiny(text_csv, tmp_path / "c", seed=8)
    assert not all_equal(head_tensors(first.run_dir), head_tensors(other.run_dir))


# --- early stopping ----------------------------------------------------------------------------


def test_early_stopping_stops_and_restores_the_best_weights(text_csv: Path, tmp_path: Path, monkeypatch) -> None:
    scripted = ScriptedValidation([0.50, 0.80, 0.60, 0.90, 0.95, 0.99])
    monkeypatch.setattr(loop, "validate", scripted)
    result = fit_tiny(text_csv, tmp_path / "run", epochs=6, patience=1, lr=1e-3)

    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["stopped_early"] is True
    assert "early stopping" in metrics["stop_reason"]
    assert metrics["epochs_run"] == 3 < 6                       # best at 2, one worse validation, stop
    history = read_history(result.run_dir)
    assert [float(r["val_accuracy"]) for r in history] == [0.50, 0.80, 0.60]
    assert metrics["best_step"] == int(history[1]["step"])
    # The artifact holds the weights of validation 2, not the last ones.
    best, last = scripted.weights[1], scripted.weights[2]
    head = head_tensors(result.run_dir)
    assert all_equal(head, {k[len("head."):]: v for k, v in best.items() if k.startswith("head.")})
    assert not all_equal(head, {k[len("head."):]: v for k, v in last.items() if k.startswith("head.")})
    encoder = encoder_tensors(result.run_dir)
    matched = [k for k in encoder if f"backbone.encoder.{k}" in best]
    assert len(matched) == len(encoder)
    assert all(torch.equal(encoder[k], best[f"backbone.encoder.{k}"]) for k in matched)


def test_restored_weights_reproduce_the_best_validation(text_csv: Path, monkeypatch) -> None:
    cfg, task_data, model, strategy, train_set, val_set, collate = build_training(
        text_csv, epochs=4, patience=0, lr=1e-3, head_lr=1e-2)
    scripted = ScriptedValidation([0.60, 0.90, 0.70, 0.80])   # validation 2 is the best
    monkeypatch.setattr(loop, "validate", scripted)
    result = loop.train(model, strategy, train_set, val_set, collate, cfg, task_data.label_names)

    assert result.state.epoch == 4 and not result.state.stop_reason
    assert result.state.best_step == result.history[1]["step"]
    again = scripted.original(model, val_set, collate, cfg.eval_batch_size, cfg.task, task_data.label_names)
    best, last = scripted.real[1], scripted.real[-1]
    assert again["loss"] == pytest.approx(best["loss"], rel=1e-6, abs=1e-7)
    assert again["accuracy"] == best["accuracy"]
    assert again["loss"] != pytest.approx(last["loss"], rel=1e-6, abs=1e-7), "the last weights were kept"
    assert result.history[1]["val_loss"] == best["loss"]


def test_best_history_row_is_what_the_final_model_scores(text_csv: Path) -> None:
    """No scripting: the final model's validation metrics equal the best row of the history."""
    cfg, task_data, model, strategy, train_set, val_set, collate = build_training(
        text_csv, epochs=4, patience=0, lr=1e-3, head_lr=1e-2, eval_every=3)
    result = loop.train(model, strategy, train_set, val_set, collate, cfg, task_data.label_names)
    again = loop.validate(model, val_set, collate, cfg.eval_batch_size, cfg.task, task_data.label_names)
    best_rows = [r for r in result.history if r["step"] == result.state.best_step]
    assert len(best_rows) == 1
    assert again["accuracy"] == max(r["val_accuracy"] for r in result.history) == best_rows[0]["val_accuracy"]
    assert again["loss"] == pytest.approx(best_rows[0]["val_loss"], rel=1e-6, abs=1e-7)


# --- validation every N steps ------------------------------------------------------------------


@pytest.mark.parametrize("every", [3, 4])
def test_eval_every_validates_every_n_steps(text_csv: Path, tmp_path: Path, capsys, every: int) -> None:
    out = tmp_path / "run"
    assert main(["fit", "--data", str(text_csv), "--model", "tiny-bert", "--strategy", "full", "--epochs", "2",
                 "--batch-size", "16", "--patience", "0", "--eval-every", str(every), "--out", str(out), "--quiet"]) == 0
    n_train = json.loads((out / "split.json").read_text())["sizes"]["train"]
    per_epoch = -(-n_train // 16)
    total = 2 * per_epoch
    # Every N steps, plus the end of an epoch that does not fall on a multiple of N.
    expected = sorted({s for s in range(1, total + 1) if s % every == 0} | {per_epoch, total})
    history = read_history(out)
    assert [int(r["step"]) for r in history] == expected
    assert [int(r["epoch"]) for r in history] == [1 if s <= per_epoch else 2 for s in expected]
    if every == 3:
        assert per_epoch % 3 == 0 and len(history) == total // 3   # no duplicate validation at epoch end
    else:
        assert per_epoch % 4 != 0 and len(history) == total // 4 + 1
