"""Tests for transferkit.losses.distill (Hinton et al., 2015)."""
import pytest
import torch
import torch.nn.functional as F

from transferkit.losses.distill import DistillationConfig, distillation_loss


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _logits(n=8, c=5):
    return torch.randn(n, c), torch.randn(n, c), torch.randint(0, c, (n,))


def _kl(s, t, temp):
    p_t = F.softmax(t / temp, dim=-1)
    return (p_t * (p_t.log() - F.log_softmax(s / temp, dim=-1))).sum(-1).mean()


def test_alpha_zero_is_plain_ce():
    s, t, y = _logits()
    out = distillation_loss(s, t, y, temperature=3.0, alpha=0.0)
    assert torch.allclose(out["loss"], F.cross_entropy(s, y))
    assert torch.allclose(out["ce"], F.cross_entropy(s, y))


@pytest.mark.parametrize("temp", [1.0, 2.0, 4.0])
def test_alpha_one_is_t2_kl(temp):
    s, t, y = _logits()
    out = distillation_loss(s, t, y, temperature=temp, alpha=1.0)
    assert torch.allclose(out["kd"], _kl(s, t, temp), atol=1e-6)
    assert torch.allclose(out["loss"], temp**2 * _kl(s, t, temp), atol=1e-5)


def test_mixture_value():
    s, t, y = _logits()
    out = distillation_loss(s, t, y, temperature=2.0, alpha=0.3)
    expected = 0.3 * 4.0 * _kl(s, t, 2.0) + 0.7 * F.cross_entropy(s, y)
    assert torch.allclose(out["loss"], expected, atol=1e-5)


def test_kl_zero_when_student_equals_teacher():
    s, _, y = _logits()
    out = distillation_loss(s, s.clone(), y, temperature=2.0, alpha=0.5)
    assert out["kd"].item() == pytest.approx(0.0, abs=1e-6)


def test_unlabelled_rows_excluded_from_ce():
    s, t, y = _logits()
    y_masked = y.clone()
    y_masked[::2] = -100
    out = distillation_loss(s, t, y_masked, temperature=2.0, alpha=0.0)
    assert torch.allclose(out["ce"], F.cross_entropy(s[1::2], y[1::2]))


@pytest.mark.parametrize("labels", [None, torch.full((8,), -100)])
def test_no_labels_gives_zero_ce(labels):
    s, t, _ = _logits()
    s.requires_grad_()
    out = distillation_loss(s, t, labels, temperature=2.0, alpha=0.5)
    assert out["ce"].item() == 0.0
    assert torch.allclose(out["loss"], 0.5 * 4.0 * out["kd"])
    out["loss"].backward()
    assert s.grad is not None


def test_teacher_gets_no_gradient():
    s, t, y = _logits()
    s.requires_grad_()
    t.requires_grad_()
    distillation_loss(s, t, y, temperature=2.0, alpha=1.0)["loss"].backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("temp,alpha", [(0.0, 0.5), (-1.0, 0.5), (2.0, -0.1), (2.0, 1.5)])
def test_invalid_hyperparameters_raise(temp, alpha):
    s, t, y = _logits()
    with pytest.raises(ValueError):
        distillation_loss(s, t, y, temperature=temp, alpha=alpha)
    with pytest.raises(ValueError):
        DistillationConfig(temperature=temp, alpha=alpha)


def test_config_defaults_and_help():
    cfg = DistillationConfig()
    assert (cfg.temperature, cfg.alpha) == (2.0, 0.5)
    from dataclasses import fields
    assert all(f.metadata.get("help") for f in fields(cfg))


def test_student_learns_teacher_predictions():
    teacher = torch.nn.Linear(4, 3)
    student = torch.nn.Linear(4, 3)
    x = torch.randn(256, 4)
    with torch.no_grad():
        t_logits = teacher(x)
    for _ in range(200):  # plain gradient descent (torch.optim's first use imports dynamo: slow)
        loss = distillation_loss(student(x), t_logits, None, temperature=2.0, alpha=1.0)["loss"]
        student.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in student.parameters():
                p -= 0.5 * p.grad
    x = torch.randn(500, 4)
    agree = (student(x).argmax(-1) == teacher(x).argmax(-1)).float().mean().item()
    assert agree > 0.95
