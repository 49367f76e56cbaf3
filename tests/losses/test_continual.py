"""Tests for transferkit.losses.continual (L2-SP, Fisher, EWC, LwF)."""
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from transferkit.losses.continual import EWC, L2SP, estimate_fisher, l2sp_penalty, lwf_loss


class Net(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.unused = nn.Linear(2, 2)
        self.head = nn.Linear(6, n_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _batches(n=4, c=3):
    return [(torch.randn(16, 4), torch.randint(0, c, (16,))) for _ in range(n)]


def _ce(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


# ---------------------------------------------------------------- L2-SP
def test_l2sp_zero_at_reference_and_beta_on_head():
    net = Net()
    reg = L2SP(net.named_parameters(), alpha=0.1, beta=0.0)
    assert reg(net.named_parameters()).item() == 0.0
    head_sq = sum(p.pow(2).sum() for p in net.head.parameters())
    reg_b = L2SP(net.named_parameters(), alpha=0.1, beta=0.4, head_prefix="head.")
    assert reg_b(net).item() == pytest.approx(0.2 * head_sq.item(), rel=1e-6)


@pytest.mark.parametrize("alpha,delta", [(0.1, 0.5), (1.0, -2.0)])
def test_l2sp_known_perturbation(alpha, delta):
    net = Net()
    reg = L2SP(net.named_parameters(), alpha=alpha, beta=0.0)
    with torch.no_grad():
        net.body.weight.add_(delta)
    expected = alpha / 2 * net.body.weight.numel() * delta**2
    assert reg(net.named_parameters()).item() == pytest.approx(expected, rel=1e-5)


def test_l2sp_ignores_frozen_params_and_has_grad():
    net = Net()
    reg = L2SP(net.named_parameters(), alpha=1.0, beta=0.0)
    net.body.weight.requires_grad_(False)
    with torch.no_grad():
        net.body.weight.add_(1.0)
        net.body.bias.add_(1.0)
    value = reg(net)
    assert value.item() == pytest.approx(0.5 * net.body.bias.numel(), rel=1e-6)
    value.backward()
    assert net.body.bias.grad is not None


def test_l2sp_functional_matches_module():
    net = Net()
    ref = {n: p.detach().clone() for n, p in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1)
    mod = L2SP(ref.items(), alpha=0.3, beta=0.2)
    assert torch.allclose(mod(net), l2sp_penalty(net, ref, 0.3, 0.2, "head."))


# ---------------------------------------------------------------- Fisher
@pytest.mark.parametrize("training", [True, False])
def test_fisher_positive_zero_for_unused_and_mode_restored(training):
    net = Net().train(training)
    fisher = estimate_fisher(net, _batches(), _ce)
    assert net.training is training
    assert set(fisher) == {n for n, _ in net.named_parameters()}
    assert (fisher["body.weight"] >= 0).all() and fisher["head.weight"].sum() > 0
    assert fisher["unused.weight"].abs().sum() == 0
    assert all(p.grad is None for p in net.parameters())


def test_fisher_uses_eval_mode_max_batches_and_trainable_only():
    net = Net()
    net.body.bias.requires_grad_(False)
    modes, seen = [], []

    def loss_fn(model, batch):
        modes.append(model.training)
        seen.append(batch)
        return _ce(model, batch)

    fisher = estimate_fisher(net.train(), _batches(5), loss_fn, max_batches=2)
    assert modes == [False, False] and len(seen) == 2
    assert "body.bias" not in fisher


def test_fisher_is_mean_of_squared_grads():
    net = Net()
    batches = _batches(3)
    expected = torch.zeros_like(net.head.bias)
    for b in batches:
        (g,) = torch.autograd.grad(_ce(net, b), [net.head.bias])
        expected += g.pow(2) / 3
    assert torch.allclose(estimate_fisher(net, batches, _ce)["head.bias"], expected, atol=1e-7)


# ---------------------------------------------------------------- EWC
def test_ewc_zero_at_reference_and_quadratic():
    net = Net()
    fisher = estimate_fisher(net, _batches(), _ce)
    ewc = EWC.from_model(net, fisher, lambda_=10.0)
    assert ewc(net).item() == 0.0
    values = []
    for step in (1.0, 2.0, 3.0):
        moved = Net()
        moved.load_state_dict(net.state_dict())
        with torch.no_grad():
            for p in moved.parameters():
                p.add_(0.1 * step)
        values.append(ewc(moved).item())
    assert values[0] > 0
    assert values[1] == pytest.approx(4 * values[0], rel=1e-4)
    assert values[2] == pytest.approx(9 * values[0], rel=1e-4)


def test_ewc_exact_value():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    ewc = EWC({"w": torch.tensor([2.0, 3.0])}, {"w": torch.tensor([0.0, 0.0])}, lambda_=2.0)
    # lambda/2 * (2*1 + 3*4) = 14
    assert ewc({"w": w}).item() == pytest.approx(14.0)


def test_ewc_grown_head_penalises_only_old_rows():
    old = Net(n_classes=3)
    fisher = {n: torch.ones_like(p) for n, p in old.named_parameters()}
    ewc = EWC.from_model(old, fisher, lambda_=2.0)
    new = Net(n_classes=5)
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("head.")}
    new.load_state_dict(state, strict=False)
    with torch.no_grad():
        new.head.weight[:3] = old.head.weight
        new.head.bias[:3] = old.head.bias
    assert ewc(new).item() == pytest.approx(0.0, abs=1e-7)   # new rows are free
    with torch.no_grad():
        new.head.weight[:3] += 1.0
    assert ewc(new).item() == pytest.approx(3 * 6, rel=1e-5)


def test_ewc_skips_missing_and_reshaped_params():
    net = Net()
    ewc = EWC({"body.weight": torch.ones(6, 4)}, {"body.weight": torch.zeros(6, 4)}, lambda_=1.0)
    other = {"body.weight": torch.ones(3, 5, requires_grad=True), "head.bias": torch.ones(3, requires_grad=True)}
    assert ewc(other).item() == 0.0
    assert ewc(net).item() > 0


# ---------------------------------------------------------------- LwF
def test_lwf_zero_when_identical():
    z = torch.randn(8, 4)
    assert lwf_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temp", [1.0, 2.0, 5.0])
def test_lwf_positive_and_t2_kl(temp):
    new, old = torch.randn(8, 4), torch.randn(8, 4)
    p = F.softmax(old / temp, -1)
    kl = (p * (p.log() - F.log_softmax(new / temp, -1))).sum(-1).mean()
    value = lwf_loss(new, old, temperature=temp)
    assert value.item() > 0
    assert value.item() == pytest.approx(temp**2 * kl.item(), rel=1e-5)


def test_lwf_uses_only_old_columns_and_validates():
    old = torch.randn(8, 3)
    new = torch.cat([old, torch.randn(8, 2)], dim=1)
    assert lwf_loss(new, old).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        lwf_loss(old, old, temperature=0.0)
    with pytest.raises(ValueError):
        lwf_loss(old[:, :2], old)
