"""`transferkit update`: re-fine-tune the current version on a new labelled batch.

The new version is trained from the previous one, tested on the held-out test set of EVERY
batch its lineage has learned, and the forgetting ledger decides whether it may be promoted:
backward transfer below −max_forgetting means it forgot too much, and the caller is told so.
Model selection uses the new batch's validation split.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import FitConfig
from ..data import prepare_task_data
from ..data.batching import EncodedDataset, make_collate
from ..data.examples import RawData, Split
from ..errors import ConfigError, DataError
from ..export.artifact import load_model, write_artifact
from ..inference import model_logits
from ..io_utils import atomic_dir, write_json_atomic
from ..losses.continual import EWC, L2SP, estimate_fisher, snapshot_parameters
from ..model import TransferModel
from ..runs import Log, claim_run_dir
from ..strategies import Strategy, parse_strategy
from ..strategies.continual import LwFStrategy, PenaltyStrategy
from ..train.callbacks import ProgressBar
from ..train.loop import train
from .ledger import Ledger
from .memory import Batch, Examples, Memory, load_memory, sample_for_replay, save_memory

METHODS = ("naive", "replay", "l2sp", "ewc", "lwf")


@dataclass
class UpdateOptions:
    method: str = "replay"
    max_forgetting: float = 0.02
    replay_size: int = 500
    penalty: float = 0.0  # 0: the method's default (l2sp α 0.01, ewc λ 5000)
    lwf_weight: float = 1.0
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown update method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.replay_size < 1 or self.penalty < 0 or self.max_forgetting < 0:
            raise ConfigError("replay_size >= 1, penalty >= 0 and max_forgetting >= 0 are required")


@dataclass
class UpdateResult:
    model_dir: Path
    version: str
    parent: str
    ledger: Ledger
    promotable: bool
    reason: str


def update(model: str | Path, data: str, out: str | Path, options: UpdateOptions | None = None,
           **fit_options: Any) -> UpdateResult:
    """Train a new version of `model` on `data`; write it to `out` with its memory and ledger."""
    options = options or UpdateOptions()
    cfg = FitConfig.from_dict({"epochs": 2, **fit_options, "data": data, "strategy": "full", "out": str(out)})
    log = Log(cfg.quiet)
    out = Path(out)
    claim_run_dir(out, cfg.overwrite, resume=False)
    previous, meta, previous_dir = load_model(model)
    memory, ledger = _lineage(previous, meta, previous_dir, cfg, options)
    new = prepare_task_data(data, task=meta["task"], text_column=cfg.text_column, label_column=cfg.label_column,
                            val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, train_size=cfg.train_size,
                            seed=cfg.seed)
    if new.modality != memory.modality:
        raise DataError(f"{data} holds {new.modality} data but the model is a {memory.modality} model")
    label_names = meta["label_names"] + [n for n in new.label_names if n not in meta["label_names"]]
    train_split, val_split, test_split = (_remap(s, new.label_names, label_names) for s in (new.train, new.val, new.test))
    batch_name = _batch_name(data, memory)
    parent = meta.get("version", "v1")
    version = f"v{len(ledger.versions) + 1}"

    student, _, _ = load_model(previous_dir)
    _grow_head(student, len(label_names))
    train_items, train_targets = list(train_split.items), train_split.targets
    if options.method == "replay":
        train_items, train_targets = _with_replay(memory, train_items, train_targets, label_names)
    strategy, extras = _strategy(options, previous, memory, train_items, label_names, cfg)
    pre = student.backbone.preprocessor
    train_set = EncodedDataset.build(pre, train_items, train_targets, extras)
    val_set = EncodedDataset.build(pre, val_split.items, val_split.targets)
    log(f"{options.method}: {len(train_items)} training examples, {len(label_names) - len(meta['label_names'])} new class(es)")
    started = time.perf_counter()
    train(student, strategy, train_set, val_set, make_collate(pre), cfg, label_names, callbacks=[ProgressBar(cfg.quiet)])
    seconds = time.perf_counter() - started

    new_batch = Batch(batch_name, data, Examples(list(test_split.items), [label_names[t] for t in test_split.targets]),
                      sample_for_replay(_raw(train_split, label_names, data, new.modality), options.replay_size, cfg.seed))
    memory.batches.append(new_batch)
    accuracies = {b.name: _accuracy(student, b.test, label_names, cfg) for b in memory.batches}
    parent_on_new = _accuracy(previous, new_batch.test, meta["label_names"], cfg, unknown_wrong=True)
    ledger.add_version(version, batch_name, accuracies, parent_on_new)
    bwt = ledger.backward_transfer[version]
    promotable = bwt is None or bwt >= -options.max_forgetting
    reason = (f"backward transfer {bwt:+.4f} is within the allowed forgetting of {options.max_forgetting:.4f}"
              if promotable else f"backward transfer {bwt:+.4f} is worse than −{options.max_forgetting:.4f}: "
              "the new version forgot too much of earlier data; not promoted")
    new_meta = _meta(meta, version, parent, label_names, options, data, ledger, seconds, promotable)
    card = f"# {version} of {meta['backbone']['source']} (updated with {options.method})\n\n{ledger.table()}\n\n{reason}\n"
    with atomic_dir(out / "model", overwrite=True) as staging:
        write_artifact(staging, student, new_meta, card, {"ledger.json": json.dumps(ledger.to_dict(), indent=2)})
        save_memory(memory, staging)
    write_json_atomic(out / "ledger.json", ledger.to_dict())
    log(reason)
    return UpdateResult(out / "model", version, parent, ledger, promotable, reason)


def _lineage(model: TransferModel, meta: dict, directory: Path, cfg: FitConfig, options: UpdateOptions) -> tuple[Memory, Ledger]:
    """The previous version's memory and ledger; for a first update, built from its own data."""
    memory = load_memory(directory)
    ledger_file = directory / "ledger.json"
    if memory is not None and ledger_file.is_file():
        return memory, Ledger.from_dict(json.loads(ledger_file.read_text()))
    origin = meta.get("data", {})
    if not origin.get("data"):
        raise DataError(f"{directory}: the artifact does not say which data it was trained on; cannot build its test memory")
    task = prepare_task_data(origin["data"], task=meta["task"], text_column=origin.get("text_column", "text"),
                             label_column=origin.get("label_column", "label"), seed=origin.get("seed", 0))
    names = meta["label_names"]
    first = Batch(_batch_name(origin["data"], None), origin["data"],
                  Examples(list(task.test.items), [names[t] for t in task.test.targets]),
                  sample_for_replay(_raw(task.train, names, origin["data"], task.modality), options.replay_size, cfg.seed))
    memory = Memory(task.modality, [first])
    ledger = Ledger()
    ledger.add_version(meta.get("version", "v1"), first.name, {first.name: _accuracy(model, first.test, names, cfg)}, None)
    return memory, ledger


def _batch_name(spec: str, memory: Memory | None) -> str:
    base = spec.removeprefix("builtin:") if spec.startswith("builtin:") else Path(spec).stem
    taken = set(memory.names()) if memory else set()
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _remap(split: Split, names: list[str], combined: list[str]) -> Split:
    index = np.array([combined.index(n) for n in names])
    return Split(split.items, index[split.targets], split.ids)


def _raw(split: Split, names: list[str], origin: str, modality: str) -> RawData:
    return RawData(list(split.items), [names[t] for t in split.targets], list(split.ids), modality, origin)


def _grow_head(model: TransferModel, n_classes: int) -> None:
    """New classes get new rows; the old rows (and what they learned) are kept."""
    old = model.head.linear
    if old.out_features == n_classes:
        return
    grown = nn.Linear(old.in_features, n_classes)
    with torch.no_grad():
        grown.weight[: old.out_features] = old.weight
        grown.bias[: old.out_features] = old.bias
    model.head.linear = grown


def _with_replay(memory: Memory, items: list, targets: np.ndarray, names: list[str]) -> tuple[list, np.ndarray]:
    replay_items = [item for b in memory.batches for item in b.replay.items]
    replay_targets = [names.index(label) for b in memory.batches for label in b.replay.labels]
    return items + replay_items, np.concatenate([targets, np.array(replay_targets, dtype=targets.dtype)])


def _strategy(options: UpdateOptions, previous: TransferModel, memory: Memory, items: list, names: list[str],
              cfg: FitConfig) -> tuple[Strategy, dict[str, np.ndarray]]:
    if options.method in ("naive", "replay"):
        return parse_strategy("full"), {}
    if options.method == "lwf":
        old = model_logits(previous, previous.backbone.preprocessor, items, cfg.eval_batch_size)
        return LwFStrategy(options.lwf_weight, options.temperature), {"old_logits": old.astype(np.float32)}
    reference = snapshot_parameters(previous, trainable_only=False)
    if options.method == "l2sp":
        return PenaltyStrategy("l2sp", L2SP(reference.items(), alpha=options.penalty or 0.01, beta=0.0)), {}
    fisher = _fisher(previous, memory, names, cfg)
    return PenaltyStrategy("ewc", EWC(fisher, reference, lambda_=options.penalty or 5000.0)), {}


def _fisher(previous: TransferModel, memory: Memory, names: list[str], cfg: FitConfig) -> dict[str, torch.Tensor]:
    """Diagonal Fisher information of the previous version on the stored earlier data."""
    items = [item for b in memory.batches for item in b.replay.items]
    targets = np.array([names.index(label) for b in memory.batches for label in b.replay.labels])
    pre = previous.backbone.preprocessor
    dataset = EncodedDataset.build(pre, items, targets)
    collate = make_collate(pre)
    batches = [collate([dataset[i] for i in range(s, min(s + cfg.batch_size, len(dataset)))])
               for s in range(0, len(dataset), cfg.batch_size)]
    for param in previous.parameters():
        param.requires_grad_(True)
    try:
        return estimate_fisher(previous, batches, lambda m, b: m.task_loss(m(b), b))
    finally:
        for param in previous.parameters():
            param.requires_grad_(False)


def _accuracy(model: TransferModel, examples: Examples, names: list[str], cfg: FitConfig, unknown_wrong: bool = False) -> float:
    """Accuracy on stored test examples; labels the model cannot predict count as errors."""
    logits = model_logits(model, model.backbone.preprocessor, examples.items, cfg.eval_batch_size)
    predicted = [names[i] for i in logits.argmax(1)]
    return float(np.mean([p == t for p, t in zip(predicted, examples.labels)]))


def _meta(meta: dict, version: str, parent: str, names: list[str], options: UpdateOptions, data: str,
          ledger: Ledger, seconds: float, promotable: bool) -> dict:
    fingerprint = hashlib.sha256(json.dumps([data, ledger.batches]).encode()).hexdigest()[:16]
    return {
        **{k: meta[k] for k in ("task", "modality", "backbone")},
        "label_names": names, "version": version, "parent": parent, "strategy": f"update:{options.method}",
        "data": {**meta.get("data", {}), "data": data, "fingerprint": fingerprint},
        "metrics": {"accuracy_by_batch": ledger.accuracy[version], "backward_transfer": ledger.backward_transfer[version],
                    "forward_gain": ledger.forward_gain[version], "train_seconds": seconds, "promotable": promotable},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
