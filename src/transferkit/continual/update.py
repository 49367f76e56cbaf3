"""`transferkit update`: re-fine-tune the current version on a new labelled batch.

The new version is trained from the previous one, tested on the held-out test set of EVERY
batch its lineage has learned, and the forgetting ledger decides whether it may be promoted:
backward transfer below −max_forgetting means it forgot too much, and the caller is told so.
Model selection uses the new batch's validation split.

This module trains a version from an artifact and writes it to OUT/model (`update`); the
registry flow (`continual.registered.update_registered`) starts from a registered version and
registers the result. The first update of a model builds its memory from the data and the exact
split (split.json) the model was trained and tested on, so its first batch's test set is exactly
the test split it was evaluated on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import FitConfig
from ..data import prepare_task_data
from ..data.batching import EncodedDataset, make_collate
from ..data.examples import RawData, Split, TaskData
from ..errors import ConfigError, DataError, ModelError
from ..export.artifact import META_FILE, load_model, write_artifact
from ..export.splits import saved_split
from ..inference import model_logits
from ..io_utils import atomic_dir, write_json_atomic, write_text_atomic
from ..losses.continual import EWC, L2SP, estimate_fisher, snapshot_parameters
from ..model import TransferModel
from ..registry import artifact_data_fingerprint
from ..runs import Log, claim_run_dir, default_run_dir, start_run_dir
from ..strategies import Strategy, parse_strategy
from ..strategies.continual import LwFStrategy, PenaltyStrategy
from ..train.callbacks import ProgressBar
from ..train.loop import train
from .ledger import Ledger
from .memory import Batch, Examples, Memory, load_memory, sample_for_replay, save_memory
from .report import write_update_report

METHODS = ("naive", "replay", "l2sp", "ewc", "lwf")
LEDGER_FILE = "ledger.json"
TOLERANCE = 1e-9  # accuracies are ratios: 0.90 − 0.92 is −0.0200000000000000018, which is "not worse than 0.02"


@dataclass
class UpdateOptions:
    method: str = "replay"
    max_forgetting: float = 0.02
    replay_size: int = 500
    penalty: float = 0.0  # 0: the method's default (l2sp α 0.01, ewc λ 5000)
    lwf_weight: float = 1.0  # lwf: w in L_task + w·T²·KL(old ‖ new)
    temperature: float = 2.0  # lwf: T

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown update method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.replay_size < 1 or self.penalty < 0 or self.max_forgetting < 0:
            raise ConfigError("replay_size >= 1, penalty >= 0 and max_forgetting >= 0 are required")
        if self.lwf_weight < 0 or self.temperature <= 0:
            raise ConfigError("lwf_weight >= 0 and temperature > 0 are required")


@dataclass
class Parent:
    """The version an update starts from, with what its lineage remembers."""

    model: TransferModel
    meta: dict[str, Any]
    directory: Path
    version: str  # its row in the ledger (in the registry flow: its registry id)
    fingerprint: str  # of the data it was trained on
    memory: Memory
    ledger: Ledger


@dataclass
class UpdateResult:
    model_dir: Path
    version: str
    parent: str
    ledger: Ledger
    promotable: bool
    reason: str
    fingerprint: str = ""
    run_dir: Path | None = None
    batch: str = ""
    train_seconds: float = 0.0


def update(model: str | Path, data: str, out: str | Path | None = None, options: UpdateOptions | None = None,
           **fit_options: Any) -> UpdateResult:
    """Train a new version of the artifact `model` on `data`; write it to OUT/model with its
    memory and ledger, and OUT/report.md/.html and OUT/ledger.json. Nothing is registered."""
    options = options or UpdateOptions()
    cfg = update_config(data, out, options, fit_options)
    previous, meta, directory = load_model(model)
    claim_out(Path(cfg.out), cfg.overwrite, keep=directory, what="the model being updated")
    parent = lineage(previous, meta, directory, cfg, options, meta.get("version", "v1"),
                     artifact_data_fingerprint(directory))
    new = load_batch(data, parent, cfg)
    result = train_version(parent, data, new, f"v{len(parent.ledger.versions) + 1}", options, cfg)
    verdict = f"{result.version} is {'promotable' if result.promotable else 'NOT promotable'}: {result.reason}"
    write_run_report(result, options, verdict, [("artifact", str(result.model_dir))])
    return result


def update_config(data: str, out: str | Path | None, options: UpdateOptions, fit_options: dict[str, Any]) -> FitConfig:
    """The training configuration of an update (full fine-tuning, 2 epochs unless told)."""
    out = out or default_run_dir("update", options.method)
    return FitConfig.from_dict({"epochs": 2, **fit_options, "data": data, "strategy": "full", "out": str(out)})


def claim_out(out: Path, overwrite: bool, keep: Path, what: str) -> None:
    """Refuse OUT when it holds a run (unless --overwrite, which clears it once training starts),
    or when OUT and `keep` (the model being updated, or the registry) contain one another."""
    resolved, kept = out.expanduser().resolve(), Path(keep).resolve()
    if resolved == kept or kept in resolved.parents or resolved in kept.parents:
        raise ConfigError(f"--out {out} overlaps {what} ({kept}); choose an --out outside it")
    claim_run_dir(out, overwrite, resume=False)


def lineage(model: TransferModel, meta: dict, directory: Path, cfg: FitConfig, options: UpdateOptions,
            version: str, fingerprint: str) -> Parent:
    """The previous version with its memory and ledger; for a first update, built from its own data."""
    if meta.get("task") != "classification":
        raise ModelError(f"{directory}: `transferkit update` re-fine-tunes classification models; "
                         f"this is a {meta.get('task')} model")
    memory = load_memory(directory)
    ledger_file = directory / LEDGER_FILE
    if memory is not None and ledger_file.is_file():
        ledger = Ledger.from_dict(json.loads(ledger_file.read_text(encoding="utf-8")))
        return Parent(model, meta, directory, version, fingerprint, memory, ledger)
    first = _first_batch(meta, directory, options, cfg)
    ledger = Ledger()
    ledger.add_version(version, first.name, {first.name: _accuracy(model, first.test, meta["label_names"], cfg)}, None)
    return Parent(model, meta, directory, version, fingerprint, Memory(meta["modality"], [first]), ledger)


def _first_batch(meta: dict, directory: Path, options: UpdateOptions, cfg: FitConfig) -> Batch:
    """The data batch the artifact was trained on: its saved test split (split.json) as the test
    set, a replay sample of its saved train split. Works for --data and --train/--val/--test runs."""
    origin = meta.get("data", {})
    spec = origin.get("data") or origin.get("train")
    if not spec:
        raise DataError(f"{directory}: the artifact does not say which data it was trained on; cannot build its test memory")
    hint = "the first update re-reads the artifact's own data and split.json to remember its test set"
    names = meta["label_names"]
    test, train_split = (saved_split(directory, meta, which, hint) for which in ("test", "train"))
    replay = sample_for_replay(_raw(train_split, names, spec, meta["modality"]), options.replay_size, cfg.seed)
    return Batch(_batch_name(spec, None), spec, Examples(list(test.items), [names[t] for t in test.targets]), replay)


def train_version(parent: Parent, data: str, new: TaskData, version: str, options: UpdateOptions,
                  cfg: FitConfig) -> UpdateResult:
    """Fine-tune `parent` on the batch `new` (from `data`) as `version`, test it on every batch,
    write OUT/model. OUT is cleared first under --overwrite (claimed earlier by `claim_out`)."""
    start_run_dir(Path(cfg.out), cfg.overwrite, resume=False)
    label_names = parent.meta["label_names"] + [n for n in new.label_names if n not in parent.meta["label_names"]]
    train_split, val_split, test_split = (_remap(s, new.label_names, label_names) for s in (new.train, new.val, new.test))
    batch_name = _batch_name(data, parent.memory)
    student, seconds = _fit_student(parent, train_split, val_split, label_names, options, cfg)

    memory = Memory(parent.memory.modality, list(parent.memory.batches))
    new_batch = Batch(batch_name, data, Examples(list(test_split.items), [label_names[t] for t in test_split.targets]),
                      sample_for_replay(_raw(train_split, label_names, data, new.modality), options.replay_size, cfg.seed))
    memory.batches.append(new_batch)
    ledger = copy.deepcopy(parent.ledger)
    accuracies = {b.name: _accuracy(student, b.test, label_names, cfg) for b in memory.batches}
    parent_on_new = _accuracy(parent.model, new_batch.test, parent.meta["label_names"], cfg)
    ledger.add_version(version, batch_name, accuracies, parent_on_new)
    promotable, reason = forgetting_verdict(ledger.backward_transfer[version], options.max_forgetting)

    fingerprint = version_fingerprint(parent.fingerprint, batch_fingerprint(data, new))
    meta = _meta(parent, version, label_names, options, data, new, cfg, ledger, seconds, promotable, reason, fingerprint)
    model_dir = Path(cfg.out) / "model"
    split_record = {**new.split_record(cfg.seed), "label_names": label_names}
    with atomic_dir(model_dir, overwrite=True) as staging:
        write_artifact(staging, student, meta, update_card(meta, ledger),
                       {LEDGER_FILE: json.dumps(ledger.to_dict(), indent=2), "split.json": json.dumps(split_record)})
        save_memory(memory, staging)
    return UpdateResult(model_dir, version, parent.version, ledger, promotable, reason, fingerprint, Path(cfg.out),
                        batch_name, seconds)


def load_batch(data: str, parent: Parent, cfg: FitConfig) -> TaskData:
    """The new labelled batch, split with the update's fractions and seed."""
    new = prepare_task_data(data, task="classification", text_column=cfg.text_column, label_column=cfg.label_column,
                            val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, train_size=cfg.train_size,
                            seed=cfg.seed)
    if new.modality != parent.memory.modality:
        raise DataError(f"{data} holds {new.modality} data but the model is a {parent.memory.modality} model")
    return new


def _fit_student(parent: Parent, train_split: Split, val_split: Split, label_names: list[str], options: UpdateOptions,
                 cfg: FitConfig) -> tuple[TransferModel, float]:
    """A fresh copy of the parent, its head grown to the new classes, trained by the method."""
    student, _, _ = load_model(parent.directory)
    _grow_head(student, len(label_names))
    train_items, train_targets = list(train_split.items), train_split.targets
    if options.method == "replay":
        train_items, train_targets = _with_replay(parent.memory, train_items, train_targets, label_names)
    strategy, extras = _strategy(options, parent.model, parent.memory, train_items, label_names, cfg)
    pre = student.backbone.preprocessor
    train_set = EncodedDataset.build(pre, train_items, train_targets, extras)
    val_set = EncodedDataset.build(pre, val_split.items, val_split.targets)
    grown = len(label_names) - len(parent.meta["label_names"])
    Log(cfg.quiet)(f"{options.method}: training on {len(train_items)} examples, {grown} new class(es)")
    started = time.perf_counter()
    train(student, strategy, train_set, val_set, make_collate(pre), cfg, label_names, callbacks=[ProgressBar(cfg.quiet)])
    return student, time.perf_counter() - started


def forgetting_verdict(bwt: float | None, max_forgetting: float) -> tuple[bool, str]:
    """Promotable unless the backward transfer is worse (more negative) than −max_forgetting."""
    if bwt is None:
        return True, "no earlier data batch to forget"
    if bwt >= -max_forgetting - TOLERANCE:
        return True, f"backward transfer {bwt:+.4f} is within --max-forgetting {max_forgetting:.4f}"
    return False, (f"backward transfer {bwt:+.4f} is worse than --max-forgetting {max_forgetting:.4f} "
                   "(it forgot too much of earlier data)")


def batch_fingerprint(data: str, batch: TaskData) -> str:
    """sha256 of a data batch: its source, and per split every example's id, label and text (for
    images: the file path, or the pixels of an in-memory image)."""
    digest = hashlib.sha256(data.encode("utf-8"))
    for name in ("train", "val", "test"):
        split: Split = getattr(batch, name)
        for example_id, item, target in zip(split.ids, split.items, split.targets):
            digest.update(json.dumps([name, str(example_id), batch.label_names[int(target)]]).encode("utf-8"))
            digest.update(np.asarray(item).tobytes() if not isinstance(item, (str, Path)) else str(item).encode("utf-8"))
    return digest.hexdigest()


def version_fingerprint(parent_fingerprint: str, batch: str) -> str:
    """What a continual version was trained on: its parent's data, then the new batch."""
    return hashlib.sha256(f"{parent_fingerprint}\0{batch}".encode()).hexdigest()


def update_card(meta: dict, ledger: Ledger) -> str:
    """The model card of an updated version: the ledger and the promotion verdict."""
    method = meta["strategy"].removeprefix("update:")
    return (f"# {meta['version']} of {meta['backbone']['source']} (updated from {meta['parent']} with {method})\n\n"
            f"{ledger.table()}\n\n{meta['metrics']['forgetting_verdict']}\n")


def restamp(directory: Path, old: str, new: str) -> None:
    """Rename version `old` to `new` in an artifact written by `train_version` (transferkit.json,
    ledger.json, model card): the registry may assign another id than the one expected."""
    if old == new:
        return
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    ledger = Ledger.from_dict(json.loads((directory / LEDGER_FILE).read_text(encoding="utf-8"))).relabel({old: new})
    meta["version"] = new
    write_text_atomic(directory / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    write_json_atomic(directory / LEDGER_FILE, ledger.to_dict())
    write_text_atomic(directory / "README.md", update_card(meta, ledger))


def write_run_report(result: UpdateResult, options: UpdateOptions, verdict: str, facts: list[tuple[str, str]]) -> None:
    """OUT/report.md, OUT/report.html and OUT/ledger.json of an update."""
    title = f"transferkit update: {result.version} from {result.parent} ({options.method}) on {result.batch}"
    facts = [("method", _method_line(options)), ("parent", result.parent), ("new data batch", result.batch),
             ("data fingerprint", result.fingerprint), ("training time", f"{result.train_seconds:.1f} s"), *facts]
    write_update_report(result.run_dir, title, verdict, facts, result.ledger)
    write_json_atomic(result.run_dir / LEDGER_FILE, result.ledger.to_dict())


def _method_line(options: UpdateOptions) -> str:
    if options.method == "lwf":
        return f"lwf (weight {options.lwf_weight}, temperature {options.temperature})"
    if options.method in ("l2sp", "ewc"):
        return f"{options.method} (strength {options.penalty or 'default'})"
    if options.method == "replay":
        return f"replay ({options.replay_size} stored examples per batch)"
    return options.method


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


def _accuracy(model: TransferModel, examples: Examples, names: list[str], cfg: FitConfig) -> float:
    """Accuracy on stored test examples; labels the model cannot predict count as errors."""
    logits = model_logits(model, model.backbone.preprocessor, examples.items, cfg.eval_batch_size)
    predicted = [names[i] for i in logits.argmax(1)]
    return float(np.mean([p == t for p, t in zip(predicted, examples.labels)]))


def _meta(parent: Parent, version: str, names: list[str], options: UpdateOptions, data: str, new: TaskData,
          cfg: FitConfig, ledger: Ledger, seconds: float, promotable: bool, reason: str, fingerprint: str) -> dict:
    batch = ledger.batches[-1]
    return {
        **{k: parent.meta[k] for k in ("task", "modality", "backbone")},
        "label_names": names, "version": version, "parent": parent.version, "strategy": f"update:{options.method}",
        "update": asdict(options),
        "data": {"origin": new.origin, "data": data, "train": None, "val": None, "test": None,
                 "text_column": cfg.text_column, "label_column": cfg.label_column, "seed": cfg.seed,
                 "split_file": "split.json", "fingerprint": fingerprint, "parent_fingerprint": parent.fingerprint,
                 "batches": list(ledger.batches)},
        "metrics": {"new_batch": batch, "accuracy_by_batch": ledger.accuracy[version],
                    "backward_transfer": ledger.backward_transfer[version], "forward_gain": ledger.forward_gain[version],
                    "max_forgetting": options.max_forgetting, "promotable": promotable, "forgetting_verdict": reason,
                    "method": options.method, "train_seconds": seconds},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
