"""`transferkit.adapt`: source-only vs domain-adaptation methods, judged on the target domain.

Every method starts from the same pretrained backbone, sees the same source split and the same
target training examples (with none / few / all of their labels), and uses the same seed.
Model selection (early stopping, best weights) uses the SOURCE validation split only: with
unlabelled target data there is nothing honest to select on in the target domain, and the target
test labels are never looked at before the final evaluation.

Each method is compared with source-only on the SAME target test examples by a paired bootstrap
of the accuracy difference (Efron & Tibshirani, 1993; Koehn, EMNLP 2004): resample the target
test examples, recompute both accuracies on each resample, take the 2.5th/97.5th percentiles.

Bad input (a regression task, unknown methods, mismatched label sets or modalities, an empty or
corrupt domain) is refused with one ConfigError/DataError before the run directory is created.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import FitConfig
from .data import TaskData, prepare_task_data
from .data.batching import EncodedDataset, LengthBucketSampler, make_collate
from .data.domains import DomainBalancedSampler, combine, describe_sizes, image_sizes, target_training_labels
from .data.examples import Split
from .errors import ConfigError, DataError
from .evaluation.compare import bootstrap_ci, paired_bootstrap_delta
from .evaluation.report import ci_text
from .evaluation.domain_plots import domain_scatter
from .evaluation.metrics import task_metrics
from .export.artifact import save_artifact
from .heads import make_head
from .inference import backbone_features, model_logits
from .io_utils import write_json_atomic, write_text_atomic
from .model import TransferModel
from .runs import Log, claim_run_dir, start_run_dir
from .strategies import parse_strategy
from .train.callbacks import ProgressBar
from .train.loop import TrainResult, train
from .zoo import Backbone, load_backbone
from .zoo.text import quiet_transformers

METHODS = ("dann", "coral", "mmd", "joint")
BASELINE = "source-only"
TARGET_LABEL_POLICIES = ("none", "few", "all")
MODEL_SELECTION = ("source validation split (early stopping and best weights); target labels are never used "
                   "for selection, and the target test labels only for the final evaluation")


@dataclass
class AdaptSettings:
    """What `adapt` adds to a FitConfig (which carries the model and the training options)."""

    target: str
    methods: list[str]
    target_labels: str = "none"  # none | few | all
    few_per_class: int = 10
    target_size: int | None = None
    target_share: float = 0.5
    save_models: bool = True
    plot_examples: int = 300


def adapt(source: str, target: str, methods: list[str] | str = METHODS, *, target_labels: str = "none",
          few_per_class: int = 10, target_size: int | None = None, target_share: float = 0.5,
          save_models: bool = True, **fit_options: Any) -> dict[str, Any]:
    """Run source-only and each method; return (and write) adapt.json's content."""
    methods = [m for m in (methods.split(",") if isinstance(methods, str) else methods) if m]
    cfg = FitConfig.from_dict({"strategy": "full", **fit_options, "data": source})
    settings = AdaptSettings(target, methods, target_labels, few_per_class, target_size, target_share, save_models)
    return run_adapt(cfg, settings)


def run_adapt(cfg: FitConfig, settings: AdaptSettings) -> dict[str, Any]:
    """Every check (settings, both domains, the model) runs before the run directory is created."""
    quiet_transformers()
    log = Log(cfg.quiet)
    _check_settings(cfg, settings)
    run_dir = Path(cfg.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-adapt")
    claim_run_dir(run_dir, cfg.overwrite, resume=False)
    source = _prepare(cfg, cfg.data, cfg.train_size)
    target = _prepare(cfg, settings.target, settings.target_size)
    _check_domains(source, target, cfg.data, settings.target)
    pretrained = load_backbone(cfg.model, max_length=cfg.max_length, image_size=cfg.image_size)
    if pretrained.modality != source.modality:
        raise DataError(f"{cfg.model} is a {pretrained.modality} model but the data holds {source.modality} data")
    preprocessing = _preprocessing(cfg, pretrained, source, target)
    start_run_dir(run_dir, cfg.overwrite, resume=False)
    cfg.save_yaml(run_dir / "config.yaml")

    target_labels = target_training_labels(target.train, settings.target_labels, settings.few_per_class, cfg.seed)
    panels = {"pretrained": _domain_features(pretrained, source.test, target.test, settings.plot_examples)}
    results: dict[str, Any] = {}
    baseline_correct = None
    for method in [BASELINE, *settings.methods]:
        log(f"{method}: training {cfg.model}")
        model, trained, seconds = _train_method(method, copy.deepcopy(pretrained), source, target, target_labels, cfg, settings)
        results[method], correct = _evaluate(model, source, target, cfg, seconds)
        results[method]["selection"] = _selection(trained, cfg)
        if method == BASELINE:
            baseline_correct = correct
        else:
            results[method]["delta_vs_source_only"] = _delta(baseline_correct, correct, cfg.seed)
        log(f"{method}: target accuracy {results[method]['target_accuracy']:.4f}, "
            f"source accuracy {results[method]['source_accuracy']:.4f}")
        panels[method] = _domain_features(model.backbone, source.test, target.test, settings.plot_examples)
        if settings.save_models:
            meta = _artifact_meta(cfg, source, method, settings, results[method])
            save_artifact(run_dir / "methods" / method / "model", model, meta, _card(meta), overwrite=True)
    report = _adapt_record(cfg, settings, source, target, preprocessing, results)
    write_json_atomic(run_dir / "adapt.json", report)
    domain_scatter(panels, run_dir / "features.png")
    write_text_atomic(run_dir / "report.md", _markdown(report))
    log(f"report: {run_dir / 'report.md'}")
    return report


def _check_settings(cfg: FitConfig, settings: AdaptSettings) -> None:
    """Refuse what `adapt` cannot do, with the flag to change, before any data is read."""
    if cfg.task != "classification":
        raise ConfigError(f"transferkit adapt supports --task classification only, not {cfg.task!r}: its methods "
                          "(DANN, CORAL, MMD, joint) and its report (target accuracy) are defined for class labels")
    if settings.target_labels not in TARGET_LABEL_POLICIES:
        raise ConfigError(f"--target-labels must be one of {', '.join(TARGET_LABEL_POLICIES)}, not {settings.target_labels!r}")
    if settings.target_labels == "few" and settings.few_per_class < 1:
        raise ConfigError(f"--few-per-class must be >= 1, not {settings.few_per_class}")
    if settings.target_size is not None and settings.target_size < 2:
        raise ConfigError(f"--target-size must be >= 2, not {settings.target_size}")
    if not 0 < settings.target_share < 1:
        raise ConfigError(f"--target-share must be strictly between 0 and 1, not {settings.target_share}")
    _check_methods(settings)


def _check_methods(settings: AdaptSettings) -> None:
    for spec in settings.methods:
        name = spec.split(":")[0]
        if name not in METHODS:
            raise ConfigError(f"unknown adaptation method {name!r}; choose from {', '.join(METHODS)}")
        if name == "joint" and settings.target_labels == "none":
            raise ConfigError("joint training needs target labels: use --target-labels few or all")
        parse_strategy(spec)  # option errors surface before any training


def _prepare(cfg: FitConfig, spec: str, size: int | None) -> TaskData:
    return prepare_task_data(spec, task=cfg.task, text_column=cfg.text_column, label_column=cfg.label_column,
                             val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, train_size=size, seed=cfg.seed)


def _check_domains(source: TaskData, target: TaskData, source_spec: str, target_spec: str) -> None:
    if source.modality != target.modality:
        raise DataError(f"source {source_spec} holds {source.modality} data but target {target_spec} holds "
                        f"{target.modality} data; both domains must be of one kind")
    _check_label_sets(source, target, source_spec, target_spec)


def _check_label_sets(source: TaskData, target: TaskData, source_spec: str, target_spec: str) -> None:
    if source.label_names == target.label_names:
        return
    only_source = sorted(set(source.label_names) - set(target.label_names))
    only_target = sorted(set(target.label_names) - set(source.label_names))
    raise DataError(f"source {source_spec} and target {target_spec} have different label sets "
                    f"(only in source: {', '.join(only_source) or '-'}; only in target: {', '.join(only_target) or '-'})")


def _train_method(method: str, backbone: Backbone, source: TaskData, target: TaskData, target_labels: np.ndarray,
                  cfg: FitConfig, settings: AdaptSettings) -> tuple[TransferModel, TrainResult, float]:
    """Train one method from the pretrained backbone; selection uses the source validation split only."""
    torch.manual_seed(cfg.seed)
    head = make_head(source.task, backbone.feature_dim, source.num_outputs, cfg.dropout, source.train.targets)
    model = TransferModel(backbone, head)
    collate = make_collate(backbone.preprocessor)
    val_set = EncodedDataset.build(backbone.preprocessor, source.val.items, source.val.targets)
    if method == BASELINE:
        # Same optimizer steps and the same number of source examples per step as the methods'
        # domain-balanced batches, so the comparison is not about compute.
        strategy = parse_strategy("full")
        train_set = EncodedDataset.build(backbone.preprocessor, source.train.items, source.train.targets)
        per_step = DomainBalancedSampler.source_per_batch(cfg.batch_size, settings.target_share)
        sampler = LengthBucketSampler(train_set.sizes, per_step, shuffle=True, bucket=cfg.bucket, seed=cfg.seed)
    else:
        items, labels, domain = combine(source.train, target.train, target_labels)
        train_set = EncodedDataset.build(backbone.preprocessor, items, labels, extras={"domain": domain})
        sampler = DomainBalancedSampler(domain, cfg.batch_size, settings.target_share, cfg.seed)
        strategy = parse_strategy(_with_schedule(method, len(sampler), cfg.epochs))
    started = time.perf_counter()
    trained = train(model, strategy, train_set, val_set, collate, cfg, source.label_names,
                    callbacks=[ProgressBar(cfg.quiet)], batch_sampler=sampler)
    return model, trained, time.perf_counter() - started


def _with_schedule(spec: str, steps_per_epoch: int, epochs: int) -> str:
    """DANN's λ schedule needs the run's length; other methods take the spec as given."""
    if spec.split(":")[0] != "dann":
        return spec
    extra = f"total_steps={steps_per_epoch * epochs},steps_per_epoch={steps_per_epoch}"
    return f"{spec},{extra}" if ":" in spec else f"dann:{extra}"


def _evaluate(model: TransferModel, source: TaskData, target: TaskData, cfg: FitConfig,
              seconds: float) -> tuple[dict, np.ndarray]:
    """Metrics on both test splits, and the per-example target correctness (for the paired delta)."""

    def score(split: Split) -> tuple[dict, np.ndarray]:
        outputs = model_logits(model, model.backbone.preprocessor, split.items, cfg.eval_batch_size)
        return task_metrics(source.task, split.targets, outputs, source.label_names), outputs

    target_metrics, target_outputs = score(target.test)
    source_metrics, _ = score(source.test)
    correct = (target_outputs.argmax(1) == target.test.targets).astype(float)
    result = {"target_accuracy": target_metrics["accuracy"], "target_ci95": bootstrap_ci(correct, seed=cfg.seed),
              "target_macro_f1": target_metrics["macro_f1"], "source_accuracy": source_metrics["accuracy"],
              "train_seconds": seconds}
    return result, correct


def _delta(baseline_correct: np.ndarray, correct: np.ndarray, seed: int) -> dict[str, Any]:
    """Paired bootstrap of target accuracy (method − source-only) over the same target test examples."""
    delta = paired_bootstrap_delta(baseline_correct, correct, seed=seed)
    return {"mean": delta["mean"], "ci95": delta["ci95"]}


def _selection(trained: TrainResult, cfg: FitConfig) -> dict[str, Any]:
    """Which weights were kept, and on what: the best source-validation score (never a target label)."""
    state = trained.state
    best_epoch = next((h["epoch"] for h in state.history if h["step"] == state.best_step), None)
    return {"criterion": f"source validation {state.metric}", "best_step": state.best_step, "best_epoch": best_epoch,
            f"source_val_{state.metric}": state.best_value, "epochs_run": state.epoch}


def _domain_features(backbone: Backbone, source: Split, target: Split, limit: int) -> tuple[np.ndarray, np.ndarray]:
    return (backbone_features(backbone, source.items[:limit]), backbone_features(backbone, target.items[:limit]))


def _preprocessing(cfg: FitConfig, backbone: Backbone, source: TaskData, target: TaskData) -> dict[str, Any]:
    """The input policy, stated: for images the fixed resize, and the original sizes of each domain.

    Image files of both domains are decoded here, so a corrupt one is named before anything is written.
    """
    if source.modality != "image":
        return {"description": f"texts: tokenised by {cfg.model}'s tokenizer, truncated to {cfg.max_length} tokens",
                "max_length": cfg.max_length}
    pre = backbone.preprocessor
    side = pre.image_size
    mean = [round(float(v), 4) for v in pre.mean.flatten()]
    std = [round(float(v), 4) for v in pre.std.flatten()]
    sizes = {name: describe_sizes(image_sizes([*data.train.items, *data.val.items, *data.test.items]))
             for name, data in (("source", source), ("target", target))}
    description = (f"images: every image of both domains is converted to RGB (grey replicated to 3 channels) and "
                   f"resized to {side}×{side} px (bilinear) whatever its original size (source: {', '.join(sizes['source'])}; "
                   f"target: {', '.join(sizes['target'])}), then scaled to [0, 1] and normalised per channel "
                   f"(mean {mean}, std {std})")
    return {"description": description, "image_size": side, "resize": "always, bilinear, to image_size × image_size",
            "channels": "RGB (grey replicated)", "mean": mean, "std": std, "original_sizes": sizes}


def _adapt_record(cfg: FitConfig, settings: AdaptSettings, source: TaskData, target: TaskData,
                  preprocessing: dict, results: dict) -> dict:
    return {
        "source": cfg.data, "target": settings.target, "model": cfg.model, "seed": cfg.seed,
        "target_labels": settings.target_labels, "few_per_class": settings.few_per_class,
        "sizes": {"source_train": len(source.train), "target_train": len(target.train),
                  "source_test": len(source.test), "target_test": len(target.test)},
        "model_selection": MODEL_SELECTION,
        "preprocessing": preprocessing, "notes": list(dict.fromkeys(source.notes + target.notes)),
        "methods": results,
    }


def _artifact_meta(cfg: FitConfig, source: TaskData, method: str, settings: AdaptSettings, result: dict) -> dict:
    return {
        "task": source.task, "modality": source.modality, "label_names": source.label_names,
        "backbone": {"source": cfg.model}, "strategy": method,
        "data": {"origin": source.origin, "data": cfg.data, "target": settings.target, "seed": cfg.seed,
                 "text_column": cfg.text_column, "label_column": cfg.label_column},
        "metrics": result, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _card(meta: dict) -> str:
    m = meta["metrics"]
    return (f"# {meta['backbone']['source']} adapted from {meta['data']['data']} to {meta['data']['target']} ({meta['strategy']})\n\n"
            f"Target test accuracy {m['target_accuracy']:.4f} (95% CI {m['target_ci95'][0]:.4f}-{m['target_ci95'][1]:.4f}); "
            f"source test accuracy {m['source_accuracy']:.4f}.\n\nLoad with `transferkit.load(PATH)`.\n")


def _markdown(report: dict) -> str:
    lines = [f"# Domain adaptation: {report['source']} → {report['target']} ({report['model']})", "",
             f"Target labels seen in training: {report['target_labels']}.", "",
             f"**Model selection:** {report['model_selection']}.", "",
             f"**Preprocessing:** {report['preprocessing']['description']}.", "",
             "Δ vs source-only: target accuracy of the method minus source-only's, on the same target test "
             f"examples ({report['sizes']['target_test']}), with a paired bootstrap 95% CI.", "",
             "| method | target accuracy [95% CI] | Δ vs source-only [95% CI] | source accuracy | selected (source val) | train s |",
             "|---|---|---|---|---|---|"]
    lines += [_markdown_row(name, r) for name, r in report["methods"].items()]
    lines += ["", "![source vs target features (PCA)](features.png)", ""]
    return "\n".join(lines)


def _markdown_row(name: str, r: dict) -> str:
    low, high = r["target_ci95"]
    delta = r.get("delta_vs_source_only")
    delta_text = "—" if delta is None else ci_text(delta)
    sel = r["selection"]
    value = next((v for k, v in sel.items() if k.startswith("source_val_")), None)
    selected = f"epoch {sel['best_epoch']}, step {sel['best_step']}" + ("" if value is None else f" ({value:.4f})")
    return (f"| {name} | {r['target_accuracy']:.4f} [{low:.4f}, {high:.4f}] | {delta_text} | {r['source_accuracy']:.4f} "
            f"| {selected} | {r['train_seconds']:.1f} |")
