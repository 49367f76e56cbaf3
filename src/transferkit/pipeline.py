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
from .frozen import frozen_bottom_sets
from .hardware import known_peak, run_threads
from .inference import model_logits
from .heads import make_head
from .io_utils import previous_version, write_json_atomic
from .model import TransferModel
from .runs import Log, claim_run_dir, default_run_dir, start_run_dir
from .strategies import OptimConfig, Strategy, parse_strategy
from .train.callbacks import HistoryWriter, ProgressBar
from .train.loop import TrainResult, train
from .train.throughput import throughput_record
from .zoo import Backbone, load_backbone
from .zoo.text import quiet_transformers


@dataclass
class FitResult:
    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]  # empty in the other processes of a distributed run: the main one evaluates
    is_main_process: bool = True


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
    """The whole pipeline for one configuration, with the run's own thread count."""
    with run_threads(cfg.threads):
        return _run_fit(cfg)


def _run_fit(cfg: FitConfig) -> FitResult:
    from accelerate import PartialState

    quiet_transformers()
    # One process, or one of several under `accelerate launch` / `torchrun` (data-parallel
    # training): every process trains; only the main one writes the run and its artifact.
    processes = PartialState(cpu=True)  # CPU training; with cpu=True a torchrun launch means DDP over gloo
    main = processes.is_main_process
    log = Log(cfg.quiet or not main)
    run_dir = _run_dir(cfg, processes)
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

    processes.wait_for_everyone()  # every process has checked the run directory before it changes
    if main:
        start_run_dir(run_dir, cfg.overwrite, cfg.resume)
        cfg.save_yaml(run_dir / "config.yaml")
        write_json_atomic(run_dir / "split.json", data.split_record(cfg.seed))
    log(f"{data.origin}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test, "
        f"{data.num_outputs if data.task == 'classification' else 'regression'} "
        f"{'classes' if data.task == 'classification' else 'target'}")

    needs_features = strategy.uses_feature_cache or not cfg.skip_before
    with processes.main_process_first():  # the other processes then read the main one's feature cache
        features, features_seconds = frozen_features(backbone, data, eval_sets, cfg, log) if needs_features else ({}, 0.0)
    before = before_outputs(cfg, strategy, data, eval_sets, features) if main and not cfg.skip_before else None

    trained = train_model(cfg, data, strategy, backbone, features, log, checkpoint_dir=run_dir / "checkpoint",
                          history_path=run_dir / "history.csv" if main else None,
                          features_seconds=features_seconds if strategy.uses_feature_cache else 0.0)
    if main:
        metrics = finish_run(cfg, run_dir, data, strategy, eval_sets, features, before, trained, source_sha256, log)
    processes.wait_for_everyone()
    return FitResult(run_dir, run_dir / "model", metrics if main else {}, is_main_process=main)


def _run_dir(cfg: FitConfig, processes: Any) -> Path:
    """--out, else a timestamped default — the main process's, so that every process agrees."""
    if cfg.out:
        return Path(cfg.out)
    from accelerate.utils import broadcast_object_list

    chosen = [str(default_run_dir(cfg.model, cfg.strategy))]
    if processes.num_processes > 1:
        broadcast_object_list(chosen)
    return Path(chosen[0])


def before_outputs(cfg: FitConfig, strategy: Strategy, data: TaskData, eval_sets: dict[str, Split],
                   features: dict[str, np.ndarray]) -> dict[str, tuple[Baseline, np.ndarray]]:
    """BEFORE on every evaluation set: a probe on the frozen features (or, when the strategy is
    itself a probe, the majority class)."""
    baseline = (majority_baseline(data.train.targets, data.task) if strategy.uses_feature_cache
                else linear_probe_baseline(features["train"], data.train.targets, features["val"],
                                           data.val.targets, data.task, cfg.seed))
    return {name: (baseline, baseline.predict(features[name])) for name in eval_sets}


def finish_run(cfg: FitConfig, run_dir: Path, data: TaskData, strategy: Strategy, eval_sets: dict[str, Split],
               features: dict[str, np.ndarray], before: dict | None, trained: Trained, source_sha256: str,
               log: Log) -> dict[str, Any]:
    """AFTER on every evaluation set, the comparison, the artifact, metrics.json and the report."""
    model = trained.model
    after = {name: after_outputs(model, strategy, split, features.get(name), cfg) for name, split in eval_sets.items()}
    metrics = _assemble_metrics(cfg, data, eval_sets, before, after, trained, strategy)
    model_dir = run_dir / "model"
    meta = artifact_meta(cfg, data, source_sha256, strategy, metrics)
    save_artifact(model_dir, model, meta, lambda full: model_card(full, metrics) + "\n".join(adapter_card(full)),
                  {"split.json": (run_dir / "split.json").read_text()}, overwrite=True)
    if note := adapter_size_note(read_meta(model_dir)):
        log(note)
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_report(run_dir, metrics, trained.result.history, data.label_names)
    for leftover in (run_dir / "checkpoint", previous_version(run_dir / "checkpoint")):
        shutil.rmtree(leftover, ignore_errors=True)  # the artifact supersedes the checkpoint
    log(metrics["verdict"])
    log(f"report: {run_dir / 'report.html'}")
    return metrics


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
    trainable: int  # the most parameters that trained at any point
    total: int
    preparation_seconds: float = 0.0  # encoding the examples, and a frozen bottom computed once
    trainable_at_start: int = 0

    @property
    def seconds(self) -> float:
        """What training cost: preparing its inputs plus the loop."""
        return self.preparation_seconds + self.result.train_seconds


def train_model(cfg: FitConfig, data: TaskData, strategy: Strategy, backbone: Backbone,
                features: dict[str, np.ndarray], log: Log, *, extras: dict[str, np.ndarray] | None = None,
                checkpoint_dir: Path | None = None, history_path: Path | None = None,
                features_seconds: float = 0.0) -> Trained:
    """A fresh head on `backbone`, prepared by `strategy`, trained on `data.train`.

    `extras` are per-training-example arrays every batch carries (e.g. a teacher's logits);
    `features` are the frozen features a feature-cache strategy trains on, and `features_seconds`
    what computing its train and val features cost (part of this training's time; only reading
    them when the disk cache had them).
    """
    torch.manual_seed(cfg.seed)
    head = make_head(data.task, backbone.feature_dim, data.num_outputs, cfg.dropout, data.train.targets)
    model = TransferModel(backbone, head)
    strategy.prepare(model)
    trainable, total = model.parameter_counts()
    log(f"strategy {strategy.spec()}: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%)"
        f"{strategy.schedule_note()}")

    prepared = time.perf_counter()
    train_set, val_set, collate = _training_sets(model, strategy, data, features, extras)
    if model.frozen_bottom and cfg.cache_frozen:
        if cached := frozen_bottom_sets(model, train_set, val_set, cfg.eval_batch_size, log):
            train_set, val_set, collate = cached.train, cached.val, cached.collate
    preparation_seconds = time.perf_counter() - prepared + features_seconds
    result = train(model, strategy, train_set, val_set, collate, cfg, data.label_names, checkpoint_dir=checkpoint_dir,
                   callbacks=[ProgressBar(log.quiet), HistoryWriter(history_path)])
    log(f"trained {result.state.epoch} epoch(s) in {result.train_seconds:.1f}s"
        + (f"; {result.state.stop_reason}" if result.state.stop_reason else ""))
    # A schedule that unfreezes (head-then-full, gradual-unfreeze) trained more than it started with.
    return Trained(model, result, max(trainable, result.most_trainable), total, preparation_seconds,
                   trainable_at_start=trainable)


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
                    log: Log) -> tuple[dict[str, np.ndarray], float]:
    """Frozen-backbone features of train, val and every evaluation set (from the disk cache when
    seen), and the seconds the train and val ones took: what training on them cost."""
    started = time.perf_counter()
    features = {name: cached_features(backbone, split.items, cfg.eval_batch_size)
                for name, split in (("train", data.train), ("val", data.val))}
    training_seconds = time.perf_counter() - started
    features.update({name: cached_features(backbone, split.items, cfg.eval_batch_size) for name, split in eval_sets.items()})
    log(f"frozen features of {len(data.train) + len(data.val) + sum(len(s) for s in eval_sets.values())} examples "
        f"in {time.perf_counter() - started:.1f}s")
    return features, training_seconds


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


def _assemble_metrics(cfg, data, eval_sets, before, after, trained: Trained, strategy) -> dict[str, Any]:
    compared = {name: _compare(cfg, data, split, before[name] if before else None, after[name])
                for name, split in eval_sets.items()}
    test = compared.pop("test")
    result = trained.result
    return {
        "task": data.task, "model": cfg.model, "strategy": strategy.spec(), "data": data.origin,
        **test, "verdict": test.get("verdict", "BEFORE was skipped (--skip-before); no comparison."),
        "n_test": len(data.test), "train_seconds": trained.seconds, "preparation_seconds": trained.preparation_seconds,
        "trainable_params": trained.trainable, "trainable_params_at_start": trained.trainable_at_start,
        "total_params": trained.total,
        "epochs_run": result.state.epoch, "best_step": result.state.best_step,
        "stopped_early": bool(result.state.stop_reason), "stop_reason": result.state.stop_reason,
        # A feature-cache strategy's epochs see one feature vector per example, not tokens or images.
        "throughput": throughput(result, "features" if strategy.uses_feature_cache
                                 else "tokens" if data.modality == "text" else "images"),
        "eval_sets": compared, "notes": data.notes,
    }


def throughput(result: TrainResult, unit: str) -> dict[str, Any]:
    """Examples and useful units per second, and the share of this machine's peak a step reached."""
    flops, flop_positions = result.step_flops
    return throughput_record(examples=result.examples_seen, units=result.units_seen, positions=result.positions_seen,
                             seconds=result.train_seconds, step_seconds=result.step_seconds, flops=flops,
                             flop_positions=flop_positions, peak=known_peak(), precision=result.precision,
                             threads=result.threads, processes=result.processes, unit=unit)


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
