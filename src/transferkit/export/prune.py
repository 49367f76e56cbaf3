"""pruned: global magnitude pruning, with an optional short recovery fine-tune.

Magnitude pruning (Han, Pool, Tran & Dally, "Learning both Weights and Connections for
Efficient Neural Networks", NeurIPS 2015): weights of small magnitude contribute little, so
remove them and retrain the rest. Here, in one shot and globally over every Linear and Conv
weight the model uses (backbone and head; not embeddings, norms or biases):

    τ = the s-quantile of |w| over all those weights together,   w ← w · 1[|w| > τ]

(`torch.nn.utils.prune.global_unstructured` with `L1Unstructured`), so layers with many small
weights lose more of them than a per-layer rule would allow. With `recover_epochs` > 0 the model
is then fine-tuned on the artifact's own training split with transferkit's training loop, the
masks held fixed (pruned weights stay zero; validation picks the best epoch), and finally
`prune.remove` makes the zeros plain weights.

Dense kernels multiply zeros like any other number: a pruned model is no faster and its
safetensors are no smaller. What it buys is compressibility and the option of sparse kernels;
the export reports the sparsity actually reached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import prune

if TYPE_CHECKING:
    from pathlib import Path

    from ..model import TransferModel
    from .formats import ExportOptions, Source

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def prunable_weights(model: TransferModel) -> list[tuple[nn.Module, str]]:
    """(module, "weight") for every Linear/Conv layer the features or the head use."""
    unused = tuple(model.backbone.unused_prefixes())
    backbone = [m for name, m in model.backbone.named_modules() if not (unused and f"{name}.".startswith(unused))]
    return [(m, "weight") for m in (*backbone, *model.head.modules()) if isinstance(m, PRUNABLE)]


def prune_by_magnitude(weights: list[tuple[nn.Module, str]], sparsity: float) -> None:
    """Zero the `sparsity` share of smallest-magnitude weights, ranked across all layers at once.

    Leaves torch's pruning masks in place (pruned entries stay zero under further training)."""
    prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=float(sparsity))


def make_permanent(weights: list[tuple[nn.Module, str]]) -> None:
    """Fold each mask into its weight: the model holds plain (sparse-valued) parameters again."""
    for module, name in weights:
        prune.remove(module, name)


def zero_share(tensors: list[torch.Tensor]) -> float:
    total = sum(t.numel() for t in tensors)
    return float(sum(int((t == 0).sum()) for t in tensors) / max(total, 1))


def recover(source: Source, model: TransferModel, options: ExportOptions) -> dict[str, Any]:
    """Fine-tune the pruned model on the artifact's training split (masks fixed, best validation kept)."""
    from ..config import FitConfig
    from ..data.batching import EncodedDataset, make_collate
    from ..strategies import parse_strategy
    from ..train.loop import train
    from .splits import saved_split, split_source

    hint = "the recovery fine-tune needs the artifact's training data; use --recover-epochs 0 without it"
    train_split = saved_split(source.directory, source.meta, "train", hint)
    val_split = saved_split(source.directory, source.meta, "val", hint)
    cfg = FitConfig(data=split_source(source.meta, "train"), task=source.meta["task"], epochs=options.recover_epochs,
                    lr=options.recover_lr, head_lr=options.recover_lr, patience=0, quiet=True, seed=options.seed)
    pre = model.backbone.preprocessor
    torch.manual_seed(options.seed)
    result = train(model, parse_strategy("full"), EncodedDataset.build(pre, train_split.items, train_split.targets),
                   EncodedDataset.build(pre, val_split.items, val_split.targets), make_collate(pre), cfg,
                   source.meta.get("label_names", []))
    model.eval()
    return {"epochs": result.state.epoch, "lr": options.recover_lr, "train_examples": len(train_split),
            "best_val_accuracy": result.state.best_value, "train_seconds": round(result.train_seconds, 1)}


def build_pruned(source: Source, staging: Path, options: ExportOptions) -> tuple[TransferModel, dict[str, Any]]:
    model = source.model
    weights = prunable_weights(model)
    prune_by_magnitude(weights, options.sparsity)
    recovery = recover(source, model, options) if options.recover_epochs else None
    make_permanent(weights)
    model.requires_grad_(False)
    return model, {
        "method": "global magnitude pruning (torch.nn.utils.prune.global_unstructured, L1Unstructured); Han et al. 2015",
        "target_sparsity": options.sparsity,
        "sparsity": zero_share([getattr(m, n).detach() for m, n in weights]),
        "model_sparsity": zero_share([p.detach() for p in model.parameters()]),
        "pruned_layers": len(weights), "recovery": recovery,
    }
