"""Tests for transferkit.losses.domain (GRL / DANN, CORAL, MK-MMD)."""
import math

import pytest
import torch
import torch.nn.functional as F

from transferkit.losses.domain import (
    DomainAdversarialLoss,
    DomainDiscriminator,
    GradientReversal,
    GradientReverseLayer,
    MultipleKernelMMD,
    coral_loss,
    dann_lambda,
    mk_mmd,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- GRL
def test_grl_forward_is_identity():
    x = torch.randn(4, 3)
    assert torch.equal(GradientReverseLayer(0.7)(x), x)


@pytest.mark.parametrize("coeff", [0.0, 0.5, 1.0, 3.0])
def test_grl_backward_is_minus_lambda_grad(coeff):
    x = torch.randn(5, 3, requires_grad=True)
    upstream = torch.randn(5, 3)
    (GradientReverseLayer(coeff)(x) * upstream).sum().backward()
    assert torch.allclose(x.grad, -coeff * upstream)


def test_grl_function_coeff_settable_on_layer():
    layer = GradientReverseLayer(1.0)
    layer.coeff = 2.0
    x = torch.randn(3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -2.0))
    y = torch.randn(3, requires_grad=True)
    GradientReversal.apply(y, 0.25).sum().backward()
    assert torch.allclose(y.grad, torch.full((3,), -0.25))


# ---------------------------------------------------------------- schedule
def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    values = [dann_lambda(p / 20) for p in range(21)]
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert values[-1] > 0.999
    assert dann_lambda(1.0, gamma=50.0) == pytest.approx(1.0)


# ---------------------------------------------------------------- DANN
def test_discriminator_output_shape():
    assert DomainDiscriminator(7, hidden_dim=16)(torch.randn(5, 7)).shape == (5,)


def test_adversarial_gradient_opposes_plain_bce():
    disc = DomainDiscriminator(4, hidden_dim=8, dropout=0.0)
    f_s = torch.randn(6, 4, requires_grad=True)
    f_t = torch.randn(5, 4, requires_grad=True)
    DomainAdversarialLoss(disc)(f_s, f_t, lambda_=1.0).backward()
    g_adv = torch.cat([f_s.grad, f_t.grad])

    f_s2, f_t2 = f_s.detach().clone().requires_grad_(), f_t.detach().clone().requires_grad_()
    ls, lt = disc(f_s2), disc(f_t2)
    plain = 0.5 * (F.binary_cross_entropy_with_logits(ls, torch.ones_like(ls))
                   + F.binary_cross_entropy_with_logits(lt, torch.zeros_like(lt)))
    plain.backward()
    g_plain = torch.cat([f_s2.grad, f_t2.grad])
    assert g_plain.abs().sum() > 0
    assert torch.allclose(g_adv, -g_plain, atol=1e-6)


def test_adversarial_lambda_scales_feature_grad_not_discriminator_grad():
    disc = DomainDiscriminator(4, hidden_dim=8, dropout=0.0)
    loss_fn = DomainAdversarialLoss(disc)
    f_s, f_t = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    loss_fn(f_s, f_t, lambda_=0.5).backward()
    g_half, w_half = f_s.grad.clone(), disc.net[0].weight.grad.clone()
    f_s.grad = None
    disc.zero_grad()
    loss_fn(f_s, f_t, lambda_=1.0).backward()
    assert torch.allclose(f_s.grad, 2 * g_half, atol=1e-6)
    assert torch.allclose(disc.net[0].weight.grad, w_half)


def test_discriminator_learns_separable_domains():
    disc = DomainDiscriminator(2, hidden_dim=32, dropout=0.1)
    loss_fn = DomainAdversarialLoss(disc)
    f_s = torch.randn(64, 2) + torch.tensor([3.0, 0.0])
    f_t = torch.randn(64, 2) - torch.tensor([3.0, 0.0])
    for _ in range(100):  # plain gradient descent (torch.optim's first use imports dynamo: slow)
        disc.zero_grad()
        loss = loss_fn(f_s, f_t, lambda_=1.0)
        loss.backward()
        with torch.no_grad():
            for p in disc.parameters():
                p -= 0.1 * p.grad
    assert loss_fn.last_domain_accuracy > 0.95
    assert loss.item() < 0.2


# ---------------------------------------------------------------- CORAL
def test_coral_zero_for_identical_batches():
    x = torch.randn(10, 4)
    assert coral_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("scale", [2.0, 5.0])
def test_coral_positive_for_scaled_batches(scale):
    x = torch.randn(16, 4)
    assert coral_loss(x, scale * x).item() > 1e-3


def test_coral_hand_computed():
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 3.0]])
    t = torch.zeros(3, 2)
    # column means (1, 1); centred rows (-1,-1),(0,-1),(1,2); divisor N-1 = 2
    # C_s = [[2, 3], [3, 6]] / 2 = [[1, 1.5], [1.5, 3]], C_t = 0
    # ||C_s||_F^2 = 1 + 2.25 + 2.25 + 9 = 14.5 ; / (4 * d^2 = 16)
    assert coral_loss(s, t).item() == pytest.approx(14.5 / 16)


def test_coral_gradient_flows_and_unequal_batches():
    s = torch.randn(8, 3, requires_grad=True)
    t = torch.randn(5, 3, requires_grad=True) * 2
    coral_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


# ---------------------------------------------------------------- MK-MMD
def test_mmd_same_vs_shifted_distribution():
    a, b = torch.randn(200, 5), torch.randn(200, 5)
    same = mk_mmd(a, b).item()
    shifted = mk_mmd(a, b + 1.5).item()
    assert same < 0.02
    assert shifted > 10 * same
    assert mk_mmd(a, a).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n_s,n_t", [(32, 32), (40, 17), (7, 50)])
def test_mmd_symmetric_unequal_batches(n_s, n_t):
    s, t = torch.randn(n_s, 4), torch.randn(n_t, 4) + 1.0
    mmd = MultipleKernelMMD()
    v1, v2 = mmd(s, t), mmd(t, s)
    assert torch.isfinite(v1) and v1.item() > 0
    assert v1.item() == pytest.approx(v2.item(), rel=1e-5)


def test_mmd_gradient_finite():
    s = torch.randn(10, 3, requires_grad=True)
    t = torch.randn(12, 3)
    mk_mmd(s, t, kernel_mults=(1.0, 2.0)).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_mmd_kernel_weights_validated():
    with pytest.raises(ValueError):
        mk_mmd(torch.randn(4, 2), torch.randn(4, 2), kernel_mults=(1.0, 2.0), kernel_weights=(1.0,))
