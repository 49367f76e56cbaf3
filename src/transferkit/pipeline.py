"""`transferkit.fit`: the whole pipeline, from data and a source model to a verified artifact.

    data → splits → backbone → BEFORE (frozen linear probe) → strategy → train → AFTER
         → paired-bootstrap comparison → artifact (model/) → metrics.json + report
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import FitConfig
from .data import TaskData, encode_eval_data, load_source, prepare_task_data
from .data.batching import EncodedDataset, feature_collate, make_collate
from .data.examples import Split
from .errors import ConfigError, DataError
from .evaluation.baselines import Baseline, linear_probe_baseline, majority_baseline
from .evaluation.compare import paired_bootstrap_delta, verdict
from .evaluation.metrics import task_metrics
from .evaluation.report import model_card, write_report
from .export.adapters import adapter_card, adapter_size_note
from .export.artifact import read_meta, save_artifact
from .features import cached_features, source_hash
from .inference import model_logits
from .heads import make_head
from .io_utils import previous_version, write_json_atomic
from .model import TransferModel
from .runs import Log, claim_run_dir, default_run_dir, start_run_dir
from .strategies import OptimConfig, Strategy, parse_strategy
from .train.callbacks import HistoryWriter, ProgressBar
from .train.loop import TrainResult, train
from .zoo import Backbone, load_backbone
from .zoo.text import quiet_transformers


@dataclass
class FitResult:
    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def resolve_config(config: str | Path | FitConfig | None = None, **overrides: Any) -> FitConfig:
    """A FitConfig from a YAML path or object plus keyword overrides (CLI flags or Python kwargs)."""
    if isinstance(config, FitConfig):
        return FitConfig.from_dict({**config.to_dict(), **overrides})
    if config is not None:
        return FitConfig.from_yaml(config, **overrides)
    out = overrides.get("out")
    if overrides.get("resume") and out and (Path(out) / "config.yaml").is_file():
        # `fit --out RUN --resume` continues the run exactly as it was configured.
        return FitConfig.from_yaml(Path(out) / "config.yaml", **overrides)
    return FitConfig.from_dict(overrides)


def fit(config: str | Path | FitConfig | None = None, **overrides: Any) -> FitResult:
    """Fine-tune `model` on `data` with `strategy`; every FitConfig field is a keyword."""
    return run_fit(resolve_config(config, **overrides))


def run_fit(cfg: FitConfig) -> FitResult:
    quiet_transformers()
    log = Log(cfg.quiet)
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.model, cfg.strategy)
    claim_run_dir(run_dir, cfg.overwrite, cfg.resume)
    torch.manual_seed(cfg.seed)

    # Everything that can be wrong with the user's input is checked before anything is written.
    data = load_task_data(cfg)
    eval_sets = {"test": data.test, **{spec: _eval_split(spec, cfg, data) for spec in cfg.eval_data}}
    strategy = parse_strategy(cfg.strategy)
    log(f"loading {cfg.model}")
    backbone = load_backbone(cfg.model, max_length=cfg.max_length, image_size=cfg.image_size)
    source_sha256 = source_hash(backbone)  # of the source weights, before training changes them
    check_compatible(backbone, strategy, data, cfg)

    start_run_dir(run_dir, cfg.overwrite, cfg.resume)
    cfg.save_yaml(run_dir / "config.yaml")
    write_json_atomic(run_dir / "split.json", data.split_record(cfg.seed))
    log(f"{data.origin}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
        f"{data.num_outputs if data.task == 'classification' else 'regression'} "
        f"{'classes' if data.task == 'classification' else 'target'}")

    needs_features = strategy.uses_feature_cache or not cfg.skip_before
    features = frozen_features(backbone, data, eval_sets, cfg, log) if needs_features else {}
    before = None
    if not cfg.skip_before:
        baseline = (majority_baseline(data.train.targets, data.task) if strategy.uses_feature_cache
                    else linear_probe_baseline(features["train"], data.train.targets, features["val"],
                                               data.val.targets, data.task, cfg.seed))
        before = {name: (baseline, baseline.predict(features[name])) for name in eval_sets}

    trained = train_model(cfg, data, strategy, backbone, features, log, checkpoint_dir=run_dir / "checkpoint",
                          history_path=run_dir / "history.csv")
    model, result = trained.model, trained.result
    after = {name: after_outputs(model, strategy, split, features.get(name), cfg) for name, split in eval_sets.items()}
    metrics = _assemble_metrics(cfg, data, eval_sets, before, after, result, strategy, trained.trainable, trained.total)
    model_dir = run_dir / "model"
    meta = artifact_meta(cfg, data, source_sha256, strategy, metrics)
    save_artifact(model_dir, model, meta, lambda full: model_card(full, metrics) + "\n".join(adapter_card(full)),
                  {"split.json": (run_dir / "split.json").read_text()}, overwrite=True)
    if note := adapter_size_note(read_meta(model_dir)):
        log(note)
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_report(run_dir, metrics, result.history, data.label_names)
    for leftover in (run_dir / "checkpoint", previous_version(run_dir / "checkpoint")):
        shutil.rmtree(leftover, ignore_errors=True)  # the artifact supersedes the checkpoint
    log(metrics["verdict"])
    log(f"report: {run_dir / 'report.html'}")
    return FitResult(run_dir, model_dir, metrics)


def load_task_data(cfg: FitConfig) -> TaskData:
    """The labelled splits of a run: loaded, split (stratified, seeded) and subsampled as `cfg` says."""
    return prepare_task_data(
        cfg.data, cfg.train, cfg.val, cfg.test, task=cfg.task, text_column=cfg.text_column,
        label_column=cfg.label_column, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
        train_size=cfg.train_size, seed=cfg.seed,
    )


@dataclass
class Trained:
    model: TransferModel
    result: TrainResult
    trainable: int
    total: int


def train_model(cfg: FitConfig, data: TaskData, strategy: Strategy, backbone: Backbone,
                features: dict[str, np.ndarray], log: Log, *, extras: dict[str, np.ndarray] | None = None,
                checkpoint_dir: Path | None = None, history_path: Path | None = None) -> Trained:
    """A fresh head on `backbone`, prepared by `strategy`, trained on `data.train`.

    `extras` are per-training-example arrays every batch carries (e.g. a teacher's logits);
    `features` are the frozen features a feature-cache strategy trains on.
    """
    torch.manual_seed(cfg.seed)
    head = make_head(data.task, backbone.feature_dim, data.num_outputs, cfg.dropout, data.train.targets)
    model = TransferModel(backbone, head)
    strategy.prepare(model)
    trainable, total = model.parameter_counts()
    log(f"strategy {strategy.spec()}: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%)"
        f"{strategy.schedule_note()}")

    train_set, val_set, collate = _training_sets(model, strategy, data, features, extras)
    result = train(model, strategy, train_set, val_set, collate, cfg, data.label_names, checkpoint_dir=checkpoint_dir,
                   callbacks=[ProgressBar(cfg.quiet), HistoryWriter(history_path)])
    log(f"trained {result.state.epoch} epoch(s) in {result.train_seconds:.1f}s"
        + (f"; {result.state.stop_reason}" if result.state.stop_reason else ""))
    return Trained(model, result, trainable, total)


def _eval_split(spec: str, cfg: FitConfig, data: TaskData) -> Split:
    parts = load_source(spec, cfg.task, cfg.text_column, cfg.label_column)
    raw = parts.get("test") or parts.get("all") or next(iter(parts.values()))
    return encode_eval_data(raw, data)


def check_compatible(backbone: Backbone, strategy: Strategy, data: TaskData, cfg: FitConfig,
                     extras: tuple[str, ...] = ()) -> None:
    """The model suits the data and the strategy, and batches will carry every field the strategy needs."""
    missing = [name for name in getattr(strategy, "batch_fields", ()) if name not in extras]
    if missing:
        raise ConfigError(f"strategy {strategy.name} needs per-example {', '.join(missing)}, which this command "
                          f"does not provide{getattr(strategy, 'usage', '')}")
    if backbone.modality != data.modality:
        raise DataError(f"{cfg.model} is a {backbone.modality} model but {data.origin} holds {data.modality} data")
    if backbone.modality not in strategy.modalities:
        raise ConfigError(f"strategy {strategy.name} does not apply to {backbone.modality} backbones")
    strategy.check(backbone, OptimConfig.from_config(cfg))


def frozen_features(backbone: Backbone, data: TaskData, eval_sets: dict[str, Split], cfg: FitConfig,
                    log: Log) -> dict[str, np.ndarray]:
    """Frozen-backbone features of train, val and every evaluation set (from the disk cache when seen)."""
    started = time.perf_counter()
    splits = {"train": data.train, "val": data.val, **eval_sets}
    features = {name: cached_features(backbone, split.items, cfg.eval_batch_size) for name, split in splits.items()}
    log(f"frozen features of {sum(len(s) for s in splits.values())} examples in {time.perf_counter() - started:.1f}s")
    return features


def _training_sets(model: TransferModel, strategy: Strategy, data: TaskData, features: dict[str, np.ndarray],
                   extras: dict[str, np.ndarray] | None = None):
    if strategy.uses_feature_cache:
        def as_dataset(name: str, split: Split, fields: dict[str, np.ndarray] | None = None) -> EncodedDataset:
            vectors = torch.from_numpy(np.ascontiguousarray(features[name], dtype=np.float32))
            return EncodedDataset(list(vectors), split.targets, [1] * len(split), fields)

        return as_dataset("train", data.train, extras), as_dataset("val", data.val), feature_collate
    pre = model.backbone.preprocessor
    return (EncodedDataset.build(pre, data.train.items, data.train.targets, extras),
            EncodedDataset.build(pre, data.val.items, data.val.targets), make_collate(pre))


def after_outputs(model: TransferModel, strategy: Strategy, split: Split, frozen: np.ndarray | None,
                  cfg: FitConfig) -> np.ndarray:
    """The trained model's outputs on `split` (its head on `frozen` features for a feature-cache strategy)."""
    if strategy.uses_feature_cache and frozen is not None:
        with torch.inference_mode():
            return model.head(torch.from_numpy(np.ascontiguousarray(frozen, dtype=np.float32))).numpy()
    return model_logits(model, model.backbone.preprocessor, split.items, cfg.eval_batch_size)


def _per_example_scores(task: str, targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Higher is better: correctness for classification, −|error| for regression."""
    if task == "classification":
        return (outputs.argmax(axis=1) == targets).astype(np.float64)
    return -np.abs(outputs[:, 0] - targets)


def _compare(cfg: FitConfig, data: TaskData, split: Split, before: tuple[Baseline, np.ndarray] | None,
             after: np.ndarray) -> dict[str, Any]:
    entry: dict[str, Any] = {"after": task_metrics(data.task, split.targets, after, data.label_names), "n": len(split)}
    if before is None:
        return entry
    baseline, outputs = before
    entry["before"] = {**task_metrics(data.task, split.targets, outputs, data.label_names),
                       "description": baseline.description}
    key = "delta_accuracy" if data.task == "classification" else "delta_mae_reduction"
    entry[key] = paired_bootstrap_delta(_per_example_scores(data.task, split.targets, outputs),
                                        _per_example_scores(data.task, split.targets, after), seed=cfg.seed)
    entry["verdict"] = verdict(entry[key], "accuracy" if data.task == "classification" else "MAE reduction")
    return entry


def _assemble_metrics(cfg, data, eval_sets, before, after, result, strategy, trainable, total) -> dict[str, Any]:
    compared = {name: _compare(cfg, data, split, before[name] if before else None, after[name])
                for name, split in eval_sets.items()}
    test = compared.pop("test")
    unit = "tokens" if data.modality == "text" else "images"
    seconds = max(result.train_seconds, 1e-9)
    return {
        "task": data.task, "model": cfg.model, "strategy": strategy.spec(), "data": data.origin,
        **test, "verdict": test.get("verdict", "BEFORE was skipped (--skip-before); no comparison."),
        "n_test": len(data.test), "train_seconds": result.train_seconds,
        "trainable_params": trainable, "total_params": total,
        "epochs_run": result.state.epoch, "best_step": result.state.best_step,
        "stopped_early": bool(result.state.stop_reason), "stop_reason": result.state.stop_reason,
        "throughput": {"examples_per_s": result.examples_seen / seconds, f"useful_{unit}_per_s": result.units_seen / seconds},
        "eval_sets": compared, "notes": data.notes,
    }


def artifact_meta(cfg, data, source_sha256, strategy, metrics) -> dict[str, Any]:
    """What transferkit.json records about a run: task, labels, source model, strategy, data, metrics."""
    return {
        "task": data.task, "modality": data.modality, "label_names": data.label_names,
        "backbone": {"source": cfg.model, "source_weights_sha256": source_sha256},
        "strategy": strategy.spec(),
        "data": {"origin": data.origin, "data": cfg.data, "train": cfg.train, "val": cfg.val, "test": cfg.test,
                 "text_column": cfg.text_column, "label_column": cfg.label_column, "seed": cfg.seed,
                 "split_file": "split.json"},
        "metrics": {k: metrics[k] for k in ("after", "before", "delta_accuracy", "delta_mae_reduction", "n_test") if k in metrics},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
