"""The `distill` strategy: its loss is exactly Hinton et al.'s, unlabelled rows feed only the KD
term, it delegates what trains to its inner strategy, and `fit` refuses it (no teacher there)."""

from __future__ import annotations

import pytest
import torch

from conftest import make_sentences, write_csv
from transferkit.cli.main import main
from transferkit.errors import ConfigError
from transferkit.heads import make_head
from transferkit.losses.distill import distillation_loss, soft_kl
from transferkit.model import TransferModel
from transferkit.strategies import OptimConfig, parse_strategy
from transferkit.strategies.distill import Distillation, DistillationOptions
from transferkit.train.loop import training_step
from transferkit.zoo import load_backbone

TEXTS = ["good fun movie", "awful dull plot", "the actors were superb", "boring", "lovely", "terrible and poor"]


@pytest.fixture(scope="module")
def model() -> TransferModel:
    torch.manual_seed(0)
    backbone = load_backbone("tiny-bert")
    return TransferModel(backbone, make_head("classification", backbone.feature_dim, 3, dropout=0.1))


def make_batch(model: TransferModel, labels: list[int]) -> dict[str, torch.Tensor]:
    pre = model.backbone.preprocessor
    torch.manual_seed(1)
    return {**pre.collate(pre.encode(TEXTS)), "labels": torch.tensor(labels),
            "teacher_logits": 3 * torch.randn(len(TEXTS), 3)}


def distill_strategy(temperature: float, alpha: float, inner: str = "full") -> Distillation:
    return Distillation(DistillationOptions(temperature=temperature, alpha=alpha, inner=inner))


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (2.0, 0.3), (4.0, 0.9), (3.0, 0.0), (2.0, 1.0)])
@pytest.mark.parametrize("labels", [[0, 1, 2, 0, 1, 2], [0, -100, 2, -100, 1, -100]], ids=["labelled", "half-unlabelled"])
def test_training_step_loss_is_hinton_distillation_loss(model, temperature, alpha, labels) -> None:
    strategy = distill_strategy(temperature, alpha)
    strategy.prepare(model)
    model.train()  # dropout on: the comparison uses the very logits the step produced
    batch = make_batch(model, labels)
    out = training_step(model, model, strategy, batch)
    expected = distillation_loss(out["logits"], batch["teacher_logits"], batch["labels"], temperature, alpha)
    assert torch.allclose(out["loss"], expected["loss"], atol=1e-6)
    assert torch.allclose(out["task_loss"], (1 - alpha) * expected["ce"], atol=1e-6)
    assert torch.allclose(out["kd"], alpha * temperature**2 * expected["kd"], atol=1e-6)


def test_unlabelled_rows_feed_the_kd_term_but_not_the_cross_entropy(model) -> None:
    strategy = distill_strategy(2.0, 0.5)
    model.eval()  # deterministic logits, so two batches can be compared
    labelled = [0, 2, 1]
    batch = make_batch(model, [*labelled, -100, -100, -100])
    out = training_step(model, model, strategy, batch)
    logits = out["logits"]
    ce_labelled = torch.nn.functional.cross_entropy(logits[:3], torch.tensor(labelled))
    assert torch.allclose(out["task_loss"], 0.5 * ce_labelled, atol=1e-6)
    kd_all = 0.5 * 4 * soft_kl(logits, batch["teacher_logits"], 2.0)
    assert torch.allclose(out["kd"], kd_all, atol=1e-6)
    assert not torch.allclose(kd_all, 0.5 * 4 * soft_kl(logits[:3], batch["teacher_logits"][:3], 2.0))
    # Changing what the teacher says about an unlabelled row changes the loss.
    batch["teacher_logits"][4] = -batch["teacher_logits"][4]
    assert not torch.allclose(training_step(model, model, strategy, batch)["kd"], out["kd"])


def test_a_batch_of_unlabelled_rows_only_has_a_finite_loss_and_gradients(model) -> None:
    strategy = distill_strategy(2.0, 0.5)
    model.train()
    model.zero_grad()
    out = training_step(model, model, strategy, make_batch(model, [-100] * len(TEXTS)))
    assert out["task_loss"].item() == 0.0
    assert torch.isfinite(out["loss"]) and out["loss"].item() > 0
    out["loss"].backward()
    grads = [p.grad for p in model.head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_the_inner_strategy_decides_what_trains(model) -> None:
    optim = OptimConfig(lr=1e-4, head_lr=1e-3, weight_decay=0.01, epochs=1)
    inner = parse_strategy("freeze-bottom:2")
    inner.prepare(model)
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    parse_strategy("full").prepare(model)
    strategy = distill_strategy(2.0, 0.5, inner="freeze-bottom:2")
    strategy.prepare(model)
    assert {name for name, p in model.named_parameters() if p.requires_grad} == expected
    ours = [(g["lr"], len(g["params"])) for g in strategy.param_groups(model, optim)]
    assert ours == [(g["lr"], len(g["params"])) for g in inner.param_groups(model, optim)]
    assert distill_strategy(2.0, 0.5, inner="linear-probe").uses_feature_cache
    assert not strategy.uses_feature_cache
    assert strategy.task_loss_weight == pytest.approx(0.5)


def test_spec_round_trips_and_options_are_validated() -> None:
    strategy = parse_strategy("distill:temperature=3,alpha=0.25,inner=freeze-bottom:1")
    assert strategy.spec() == "distill:temperature=3.0,alpha=0.25,inner=freeze-bottom:1"
    assert parse_strategy(strategy.spec()).options == strategy.options
    assert strategy.task_loss_weight == pytest.approx(0.75)
    for bad, needle in [("distill:alpha=1.5", "alpha"), ("distill:temperature=0", "temperature"),
                        ("distill:inner=distill", "itself"), ("distill:inner=nonsense", "nonsense")]:
        with pytest.raises(ConfigError, match=needle):
            parse_strategy(bad)


def test_fit_refuses_the_distill_strategy_before_writing_anything(tmp_path, capsys) -> None:
    data = write_csv(tmp_path / "d.csv", make_sentences(60))
    out = tmp_path / "out"
    code = main(["fit", "--data", str(data), "--model", "tiny-bert", "--strategy", "distill", "--epochs", "1",
                 "--out", str(out), "--quiet"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("transferkit: error:") and "teacher_logits" in lines[0] and "transferkit distill" in lines[0]
    assert not out.exists()
