"""Epoch checkpoints for `--resume`: safetensors for weights, JSON for the loop's state.

The optimizer/scheduler state is a dict of tensors and numbers that we wrote ourselves; it is
read back with `torch.load(..., weights_only=True)`, which refuses arbitrary pickled objects.
A checkpoint directory is replaced atomically, so a kill during saving keeps the previous one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..io_utils import atomic_dir, latest_complete
from .callbacks import TrainState


def state_dict_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(directory: Path, model: torch.nn.Module, best: dict[str, torch.Tensor] | None,
                    optimizer: Any, scheduler: Any, state: TrainState) -> None:
    with atomic_dir(directory, overwrite=True) as staging:
        save_file(state_dict_copy(model), str(staging / "model.safetensors"))
        if best is not None:
            save_file(best, str(staging / "best.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optim.pt")
        (staging / "state.json").write_text(json.dumps(dataclasses.asdict(state), indent=1))


def has_checkpoint(directory: Path) -> bool:
    return (latest_complete(directory) / "state.json").is_file()


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any
                    ) -> tuple[TrainState, dict[str, torch.Tensor] | None]:
    directory = latest_complete(directory)
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    optim = torch.load(directory / "optim.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(optim["optimizer"])
    scheduler.load_state_dict(optim["scheduler"])
    state = TrainState(**json.loads((directory / "state.json").read_text()))
    best_path = directory / "best.safetensors"
    best = load_file(str(best_path)) if best_path.is_file() else None
    return state, best
