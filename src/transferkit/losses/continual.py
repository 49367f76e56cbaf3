"""Regularisers for fine-tuning and continual learning: L2-SP, EWC and LwF.

All state (reference weights, Fisher diagonals) is kept as plain
``dict[str, Tensor]`` keyed by parameter name, so callers can save it with
safetensors.  Nothing here knows about the training loop.

References
----------
* Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning with
  Convolutional Networks", ICML 2018 (L2-SP).
* Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks",
  PNAS 114(13), 2017 (EWC).
* Li & Hoiem, "Learning without Forgetting", ECCV 2016 / TPAMI 2017 (LwF).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import torch
from torch import Tensor, nn

from .distill import soft_kl

__all__ = ["L2SP", "l2sp_penalty", "estimate_fisher", "EWC", "lwf_loss", "snapshot_parameters"]

NamedParams = Union[nn.Module, Mapping[str, Tensor], Iterable[tuple[str, Tensor]]]


def _named(params: NamedParams) -> list[tuple[str, Tensor]]:
    """Normalise a module / mapping / iterable of (name, tensor) to a list."""
    if isinstance(params, nn.Module):
        return list(params.named_parameters())
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def _is_frozen(p: Tensor) -> bool:
    """Frozen = an ``nn.Parameter`` with ``requires_grad=False``; plain tensors count as live."""
    return isinstance(p, nn.Parameter) and not p.requires_grad


def _trainable(params: NamedParams) -> list[tuple[str, Tensor]]:
    return [(n, p) for n, p in _named(params) if not _is_frozen(p)]


def snapshot_parameters(params: NamedParams, trainable_only: bool = True) -> dict[str, Tensor]:
    """Detached clones of the (non-frozen) parameters: a safetensors-friendly dict."""
    named = _trainable(params) if trainable_only else _named(params)
    return {n: p.detach().clone() for n, p in named}


def _zero(named: list[tuple[str, Tensor]]) -> Tensor:
    return named[0][1].new_zeros(()) if named else torch.zeros(())


def l2sp_penalty(
    model_or_named_params: NamedParams,
    reference: Mapping[str, Tensor],
    alpha: float = 0.01,
    beta: float = 0.01,
    head_prefix: str = "head.",
) -> Tensor:
    """L2-SP penalty (Li, Grandvalet & Davoine, ICML 2018).

        Ω(w) = α/2 · Σ_{i ∈ backbone} ‖w_i − w⁰_i‖² + β/2 · Σ_{j ∈ head} ‖w_j‖²

    Parameters whose name starts with ``head_prefix`` form the head; other
    trainable parameters are pulled to their ``reference`` value w⁰ (skipped
    if absent from ``reference`` or reshaped).  Frozen parameters
    (``nn.Parameter`` with ``requires_grad=False``) are ignored; plain tensors
    (e.g. a dict for ``torch.func.functional_call``) are all counted.
    """
    named = _trainable(model_or_named_params)
    backbone, head = _zero(named), _zero(named)
    for name, w in named:
        if head_prefix and name.startswith(head_prefix):
            head = head + w.pow(2).sum()
            continue
        ref = reference.get(name)
        if ref is None or ref.shape != w.shape:
            continue
        backbone = backbone + (w - ref.to(w.device, w.dtype)).pow(2).sum()
    return 0.5 * alpha * backbone + 0.5 * beta * head


class L2SP(nn.Module):
    """L2-SP regulariser holding a detached snapshot w⁰ of the starting point.

    ``L2SP(model.named_parameters(), alpha, beta, head_prefix)`` snapshots the
    trainable non-head parameters; ``forward(model.named_parameters())``
    returns :func:`l2sp_penalty`.  ``reference`` is a plain dict of tensors.
    """

    def __init__(
        self, named_parameters: NamedParams, alpha: float = 0.01, beta: float = 0.01, head_prefix: str = "head."
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.head_prefix = float(alpha), float(beta), head_prefix
        self.reference: dict[str, Tensor] = {
            n: w for n, w in snapshot_parameters(named_parameters).items()
            if not (head_prefix and n.startswith(head_prefix))
        }

    def forward(self, named_parameters: NamedParams) -> Tensor:
        return l2sp_penalty(named_parameters, self.reference, self.alpha, self.beta, self.head_prefix)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, head_prefix={self.head_prefix!r}"


def estimate_fisher(
    model: nn.Module,
    batches: Iterable[Any],
    loss_fn: Callable[[nn.Module, Any], Tensor],
    max_batches: int | None = None,
) -> dict[str, Tensor]:
    """Diagonal empirical Fisher information (Kirkpatrick et al., PNAS 2017).

        F_i = 1/B · Σ_b ( ∂ L_b / ∂θ_i )²

    over at most ``max_batches`` batches, with L_b = ``loss_fn(model, batch)``.
    Only trainable parameters are returned; parameters that do not affect the
    loss get zeros.  The model is put in eval mode and its previous mode
    restored; the parameters' ``.grad`` fields are not touched.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fisher = {n: torch.zeros_like(p, memory_format=torch.preserve_format) for n, p in named}
    params = [p for _, p in named]
    was_training = model.training
    model.eval()
    count = 0
    try:
        for batch in batches:
            if max_batches is not None and count >= max_batches:
                break
            loss = loss_fn(model, batch)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for (name, _), g in zip(named, grads):
                if g is not None:
                    fisher[name] += g.detach().pow(2)
            count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("estimate_fisher received no batches")
    return {n: f / count for n, f in fisher.items()}


def _aligned(w: Tensor, ref: Tensor) -> Tensor | None:
    """``w`` or its first ``ref.shape[0]`` rows if the head grew along dim 0; else None."""
    if w.shape == ref.shape:
        return w
    if w.dim() >= 1 and w.shape[1:] == ref.shape[1:] and w.shape[0] > ref.shape[0]:
        return w[: ref.shape[0]]
    return None


class EWC(nn.Module):
    """Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017).

        Ω(θ) = λ/2 · Σ_i F_i (θ_i − θ*_i)²

    Built from a Fisher diagonal and the reference θ* (both ``dict[str, Tensor]``).
    ``forward(named_parameters)`` skips frozen parameters, parameters missing
    from the Fisher dict, and reshaped ones; for a head that grew new rows
    along dim 0 (new classes) only the old leading rows are penalised.
    """

    def __init__(self, fisher: Mapping[str, Tensor], reference: Mapping[str, Tensor], lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)
        self.fisher: dict[str, Tensor] = {n: f.detach().clone() for n, f in fisher.items()}
        self.reference: dict[str, Tensor] = {n: r.detach().clone() for n, r in reference.items()}
        missing = set(self.fisher) - set(self.reference)
        if missing:
            raise ValueError(f"reference lacks Fisher entries: {sorted(missing)}")

    @classmethod
    def from_model(cls, model: NamedParams, fisher: Mapping[str, Tensor], lambda_: float = 1.0) -> "EWC":
        """Snapshot θ* from the current parameters of ``model``."""
        return cls(fisher, snapshot_parameters(model), lambda_)

    def forward(self, named_parameters: NamedParams) -> Tensor:
        named = _trainable(named_parameters)
        total = _zero(named)
        for name, w in named:
            fisher, ref = self.fisher.get(name), self.reference.get(name)
            if fisher is None or fisher.shape != ref.shape:
                continue
            w_old = _aligned(w, ref)
            if w_old is None:
                continue
            diff = w_old - ref.to(w.device, w.dtype)
            total = total + (fisher.to(w.device, w.dtype) * diff.pow(2)).sum()
        return 0.5 * self.lambda_ * total

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}, n_params={len(self.fisher)}"


def lwf_loss(new_logits_old_classes: Tensor, old_logits: Tensor, temperature: float = 2.0) -> Tensor:
    """Learning without Forgetting distillation term (Li & Hoiem, ECCV 2016).

        L_old = T² · KL( softmax(y_o / T) ‖ softmax(ŷ_o / T) )

    with y_o the recorded outputs of the previous model (detached) and ŷ_o the
    current model's logits on the old classes; batch-mean reduction.  If
    ``new_logits_old_classes`` has extra columns (new classes appended after
    the old ones), only the first ``old_logits.shape[-1]`` are used.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n_old = old_logits.shape[-1]
    if new_logits_old_classes.shape[-1] < n_old:
        raise ValueError(f"new logits have {new_logits_old_classes.shape[-1]} classes, need >= {n_old}")
    new = new_logits_old_classes[..., :n_old]
    return temperature**2 * soft_kl(new, old_logits, temperature)
