"""Text backbones: any Hugging Face encoder (BERT, MPNet, ...) with masked mean pooling.

Mean pooling over non-padding tokens is what the sentence-transformers checkpoints in the zoo
were trained with (Reimers & Gurevych, 2019), so frozen features are meaningful from step 0.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
from urllib.parse import urlparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .base import Backbone, PeftSpec, Preprocessor, plain_name


def quiet_transformers() -> None:
    """transformers prints weight-loading progress bars and advice; keep CLI output clean."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the Hub endpoint ($HF_ENDPOINT or huggingface.co)?"""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


class TokenizerPreprocessor(Preprocessor):
    """Tokenises once per example without padding; pads per batch (dynamic padding)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, items: Sequence[str]) -> list[list[int]]:
        out = self.tokenizer(list(items), truncation=True, max_length=self.max_length)
        return out["input_ids"]

    def collate(self, encoded: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def size(self, encoded: list[int]) -> int:
        return len(encoded)

    def save(self, directory: Path) -> dict[str, Any]:
        self.tokenizer.save_pretrained(directory)
        return {"max_length": self.max_length}


class HFTextBackbone(Backbone):
    """A transformers `AutoModel` encoder; features = masked mean of the last hidden states."""

    modality = "text"
    family = "hf-text"

    def __init__(self, encoder: nn.Module, tokenizer: Any, source: str, max_length: int = 128) -> None:
        super().__init__(source=source, feature_dim=int(encoder.config.hidden_size))
        self.encoder = encoder
        self._preprocessor = TokenizerPreprocessor(tokenizer, max_length)
        self._layer_count = _count_layers(encoder)
        self.model_type = str(getattr(encoder.config, "model_type", ""))
        self._block_list = self._find_block_list()  # before peft may wrap (and rename) anything

    @classmethod
    def from_directory(cls, path: Path | str, source: str, max_length: int = 128) -> HFTextBackbone:
        """Load a local Hugging Face model directory (config.json + weights + tokenizer)."""
        from transformers import AutoModel, AutoTokenizer

        quiet_transformers()
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelError(f"{source}: {path} is not a Hugging Face model directory (no config.json)")
        with contextlib.redirect_stdout(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(path)
            encoder = AutoModel.from_pretrained(path)
        return cls(encoder, tokenizer, source=source, max_length=max_length)

    @classmethod
    def from_hub(cls, repo_id: str, max_length: int = 128) -> HFTextBackbone:
        """Load from the local Hugging Face cache, else download (needs internet).

        Offline, transformers retries for about a minute before failing; we first try the local
        cache, then probe the Hub with a short timeout, and fail with one clear line.
        """
        from transformers import AutoModel, AutoTokenizer

        quiet_transformers()
        source = f"hf:{repo_id}"
        try:
            tokenizer = AutoTokenizer.from_pretrained(repo_id, local_files_only=True)
            encoder = AutoModel.from_pretrained(repo_id, local_files_only=True)
            return cls(encoder, tokenizer, source=source, max_length=max_length)
        except (OSError, ValueError):
            pass  # not cached: download below
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or not hub_reachable():
            raise ModelError(f"{source}: not in the local Hugging Face cache and the Hub cannot be reached "
                             "(offline?); download it where you have internet and use dir:PATH")
        try:
            tokenizer = AutoTokenizer.from_pretrained(repo_id)
            encoder = AutoModel.from_pretrained(repo_id)
        except (OSError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{source}: could not load from the Hugging Face Hub ({reason})") from None
        return cls(encoder, tokenizer, source=source, max_length=max_length)

    @property
    def preprocessor(self) -> TokenizerPreprocessor:
        return self._preprocessor

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        if "frozen_state" in batch:  # the bottom groups' output, computed once: run the blocks above it
            with self._running(slice(int(batch["frozen_groups"]) - 1, None), embeddings=False):
                hidden = self.encoder(inputs_embeds=batch["frozen_state"], attention_mask=mask).last_hidden_state
        else:
            hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        hidden = hidden[:, -mask.shape[1]:]  # prompt tuning prepends virtual tokens: pool the real ones
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    # Group 0 is the embeddings, group g ≥ 1 is block g − 1: groups [0, k) are the embeddings and
    # blocks [0, k − 1). The encoder itself runs either part — it builds its own attention mask
    # and (MPNet) relative position bias — with its block list cut to the part and, for the top,
    # its embeddings module replaced by a pass-through of `inputs_embeds`. The pipeline checks
    # that top(bottom(x)) reproduces forward(x) before it trusts this (models with a final norm
    # after the blocks would not), and falls back to running every layer.

    @property
    def supports_bottom_split(self) -> bool:  # type: ignore[override]
        return isinstance(getattr(self.encoder, "embeddings", None), nn.Module) and self._block_list is not None

    def bottom(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        with self._running(slice(0, k - 1), embeddings=True):
            return self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state

    def bottom_modules(self, k: int) -> list[nn.Module]:
        if k < 1 or not self.supports_bottom_split:
            return []
        return [self.encoder.embeddings, *list(self.get_submodule(self._block_list))[: k - 1]]

    def _find_block_list(self) -> str | None:
        """The module path of the transformer blocks' ModuleList, e.g. 'encoder.encoder.layer'."""
        try:
            path = _block_prefix([n for n, _ in self.named_parameters()]).rstrip(".")
            return path if isinstance(self.get_submodule(path), nn.ModuleList) else None
        except (ModelError, AttributeError):
            return None

    @contextlib.contextmanager
    def _running(self, blocks: slice, embeddings: bool):
        """The encoder with only `blocks` of its block list (and no embeddings, if not `embeddings`)."""
        parent_path, _, name = self._block_list.rpartition(".")
        parent = self.get_submodule(parent_path)
        every_block, every_embedding = getattr(parent, name), self.encoder.embeddings
        setattr(parent, name, nn.ModuleList(list(every_block)[blocks]))
        if not embeddings:
            self.encoder.embeddings = _PassThrough()
        try:
            yield
        finally:
            setattr(parent, name, every_block)
            self.encoder.embeddings = every_embedding

    def layer_group_prefixes(self) -> list[list[str]]:
        # Group 0 holds everything below the first transformer block (embeddings, and for MPNet
        # the shared relative attention bias); then one group per block, bottom to top.
        names = [plain_name(n) for n, _ in self.named_parameters()]
        block_prefix = _block_prefix(names)
        blocks = [[f"{block_prefix}{i}."] for i in range(self._layer_count)]
        block_names = tuple(p[0] for p in blocks)
        unused = tuple(self.unused_prefixes())
        bottom = sorted({n for n in names if not n.startswith(block_names) and not n.startswith(unused)})
        return [bottom, *blocks]

    def unused_prefixes(self) -> list[str]:
        return ["encoder.pooler."]

    def peft_spec(self) -> PeftSpec:
        """peft's own default targets for this model type (BERT: query/value for LoRA;
        key/value/output.dense for IA3), plus MPNet, which peft's tables lack."""
        from peft.utils.constants import (TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as IA3_FF,
                                          TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as IA3,
                                          TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as LORA)

        lora, ia3, ff = ({**LORA, **_EXTRA_LORA}, {**IA3, **_EXTRA_IA3}, {**IA3_FF, **_EXTRA_IA3_FF})
        return PeftSpec(module="encoder", task_type="FEATURE_EXTRACTION", lora=tuple(lora.get(self.model_type, ())),
                        ia3=tuple(ia3.get(self.model_type, ())), ia3_feedforward=tuple(ff.get(self.model_type, ())))

    def save_weights(self, directory: Path) -> dict[str, Any]:
        encoder_dir = Path(directory) / "encoder"
        self.encoder.save_pretrained(encoder_dir, safe_serialization=True)
        settings = self._preprocessor.save(encoder_dir)
        return {"family": self.family, "path": "encoder", **settings}


class _PassThrough(nn.Module):
    """Stands in for an encoder's embeddings when the input is already a hidden state."""

    def forward(self, inputs_embeds: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        return inputs_embeds


# MPNet's attention projections are attention.attn.{q,k,v,o}; its feed-forward is BERT's.
_EXTRA_LORA = {"mpnet": ["q", "v"]}
_EXTRA_IA3 = {"mpnet": ["k", "v", "output.dense"]}
_EXTRA_IA3_FF = {"mpnet": ["output.dense"]}


def _count_layers(encoder: nn.Module) -> int:
    config = encoder.config
    for attribute in ("num_hidden_layers", "n_layers", "num_layers"):
        if hasattr(config, attribute):
            return int(getattr(config, attribute))
    raise ModelError(f"cannot tell how many layers {type(encoder).__name__} has")


def _block_prefix(names: list[str]) -> str:
    """The parameter-name prefix of the transformer blocks, e.g. 'encoder.encoder.layer.'."""
    for name in names:
        match = re.match(r"(.*?\.(?:layer|layers|h|block)\.)\d+\.", name)
        if match:
            return match.group(1)
    raise ModelError("cannot find the transformer blocks of this encoder")
