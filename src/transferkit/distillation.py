"""`transferkit.distill`: a fine-tuned teacher trains a small student (Hinton et al., 2015).

    L = α · T² · KL( softmax(z_t / T) ‖ softmax(z_s / T) ) + (1 − α) · CE(y, z_s)

    teacher artifact + labelled data (split exactly like `fit`) [+ unlabelled texts]
      → the teacher's logits on the transfer set, computed once (frozen features cached on disk)
      → student_plain (ordinary fine-tuning) and student_distilled (same strategy, seed and
        hyperparameters, plus the KD term; see strategies/distill.py)
      → teacher / plain / distilled on the same test split → metrics.json, report, model/
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .config import RUN_CONTROL, FitConfig
from .data.examples import Split, TaskData
from .data.tables import TABLE_SUFFIXES, read_table, read_utf8
from .errors import ConfigError, DataError, ModelError
from .evaluation.compare import bootstrap_ci, paired_bootstrap_delta
from .evaluation.distill_report import distilled_model_card, verdict, write_distill_report
from .evaluation.latency import measure_latency
from .evaluation.metrics import task_metrics
from .export.artifact import save_artifact
from .features import cached_features, source_hash
from .heads import IGNORE_INDEX
from .io_utils import write_json_atomic, write_text_atomic
from .pipeline import Trained, after_outputs, artifact_meta, check_compatible, frozen_features, load_task_data, train_model
from .predictor import Predictor
from .runs import Log, claim_run_dir, default_run_dir, start_run_dir
from .strategies import Strategy, parse_strategy
from .strategies.distill import TEACHER_LOGITS, Distillation, DistillationOptions
from .zoo import Backbone, load_backbone
from .zoo.text import quiet_transformers

UNSUPPORTED = {"resume": "distill runs cannot be resumed", "eval_data": "extra evaluation sets are not supported"}


@dataclass
class DistillResult:
    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def distill(teacher: str | Path, student: str = "minilm-l6", *, temperature: float = 2.0, alpha: float = 0.5,
            unlabelled: str | Path | None = None, unlabelled_column: str | None = None,
            **fit_options: Any) -> DistillResult:
    """Train `student` on `data` twice, without and with the teacher's soft labels, and compare all three.

    `fit_options` are FitConfig fields (data, strategy, epochs, lr, seed, out, ...): the student's
    training, identical for both students. `unlabelled` (text lines, or a CSV/JSONL with the text
    column) extends the transfer set: those rows get the KD term only.
    """
    quiet_transformers()
    cfg, strategy = student_config(student, temperature, alpha, fit_options)
    log = Log(cfg.quiet)
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.model, "distill")
    claim_run_dir(run_dir, cfg.overwrite, resume=False)
    torch.manual_seed(cfg.seed)

    # Everything that can be wrong with the user's input is checked before anything is written.
    mentor = Predictor(teacher, batch_size=cfg.eval_batch_size)
    data = load_task_data(cfg)
    check_teacher(mentor, data)
    extra = unlabelled_items(unlabelled, unlabelled_column or cfg.text_column, data) if unlabelled else []
    log(f"loading {cfg.model}")
    backbone = load_backbone(cfg.model, max_length=cfg.max_length, image_size=cfg.image_size)
    source_sha256 = source_hash(backbone)
    check_compatible(backbone, strategy, data, cfg, extras=(TEACHER_LOGITS,))

    start_run_dir(run_dir, cfg.overwrite, resume=False)
    settings = {"teacher": str(mentor.directory.resolve()), "teacher_sha256": artifact_digest(mentor.directory),
                "temperature": temperature, "alpha": alpha, "strategy": cfg.strategy,
                "unlabelled": str(Path(unlabelled).resolve()) if unlabelled else None, "n_unlabelled": len(extra)}
    _save_config(run_dir / "config.yaml", cfg, settings)
    write_json_atomic(run_dir / "split.json", data.split_record(cfg.seed))
    log(f"{data.origin}: {len(data.train)} train (+{len(extra)} unlabelled) / {len(data.val)} val / "
        f"{len(data.test)} test; teacher {mentor.meta['backbone'].get('source')} at {mentor.directory}")

    transfer = with_unlabelled(data, extra)
    started = time.perf_counter()
    # Labelled and unlabelled parts are cached apart: a linear-probe teacher fitted on this split
    # already cached its features of the labelled part, so only new texts go through the teacher.
    parts = [data.train.items, extra] if extra else [data.train.items]
    transfer_logits = np.concatenate([teacher_logits(mentor, items, data.label_names, cfg.eval_batch_size) for items in parts])
    test_teacher = teacher_logits(mentor, data.test.items, data.label_names, cfg.eval_batch_size)
    settings["teacher_logits_seconds"] = time.perf_counter() - started
    log(f"teacher logits of {len(transfer.train) + len(data.test)} examples in {settings['teacher_logits_seconds']:.1f}s")

    # Both students start from the same pretrained weights, each with its own strategy instance.
    log("student without distillation")
    plain = _train_student(cfg, data, parse_strategy(cfg.strategy), copy.deepcopy(backbone), log,
                           run_dir / "history_student_plain.csv")
    log(f"student with distillation (T={temperature}, α={alpha})")
    distilled = _train_student(cfg, transfer, strategy, backbone, log, run_dir / "history_student_distilled.csv",
                               {TEACHER_LOGITS: transfer_logits})

    metrics = _assemble_metrics(cfg, data, mentor, settings, test_teacher, plain, distilled)
    model_dir = _write_results(run_dir, cfg, data, source_sha256, strategy, settings, distilled[0], metrics)
    log(metrics["verdict"])
    log(f"report: {run_dir / 'report.html'}")
    return DistillResult(run_dir, model_dir, metrics)


def student_config(student: str, temperature: float, alpha: float,
                   fit_options: dict[str, Any]) -> tuple[FitConfig, Distillation]:
    """The students' training configuration and the distillation strategy around its strategy."""
    for name, reason in UNSUPPORTED.items():
        if fit_options.get(name):
            raise ConfigError(f"{name}: {reason} by transferkit distill")
    if "model" in fit_options:
        raise ConfigError("give the student model as student=..., not model=...")
    cfg = FitConfig.from_dict({**fit_options, "model": student, "skip_before": True})
    try:
        return cfg, Distillation(DistillationOptions(temperature=temperature, alpha=alpha, inner=cfg.strategy))
    except ValueError as exc:
        raise ConfigError(f"distill: {exc}") from None


def check_teacher(teacher: Predictor, data: TaskData) -> None:
    """A classification teacher of the same modality, with exactly the data's label set, that never
    trained on this run's test examples."""
    where = f"teacher {teacher.directory}"
    if not hasattr(teacher.runtime, "model"):  # the teacher's logits come from its PyTorch backbone and head
        raise ModelError(f"{where} is an ONNX export, which has no PyTorch model; use the artifact it was exported "
                         f"from ({teacher.meta.get('export', {}).get('source', {}).get('path', 'its source')}) as the teacher")
    if teacher.task != "classification" or data.task != "classification":
        raise ConfigError(f"{where}: distillation needs a classification teacher and classification data "
                          f"(teacher: {teacher.task}, data: {data.task})")
    if teacher.modality != data.modality:
        raise DataError(f"{where} is a {teacher.modality} model but {data.origin} holds {data.modality} data")
    only_data = sorted(set(data.label_names) - set(teacher.label_names))
    only_teacher = sorted(set(teacher.label_names) - set(data.label_names))
    if only_data or only_teacher:
        raise DataError(f"{where} and {data.origin} have different label sets: only in the data: "
                        f"{', '.join(map(repr, only_data)) or 'none'}; only in the teacher: "
                        f"{', '.join(map(repr, only_teacher)) or 'none'}; the student must learn the teacher's labels")
    _check_teacher_split(teacher, data)


def _check_teacher_split(teacher: Predictor, data: TaskData) -> None:
    split_file = teacher.directory / "split.json"
    if teacher.meta.get("data", {}).get("origin") != data.origin or not split_file.is_file():
        return  # trained on other data: there is no shared test split to protect
    record = json.loads(split_file.read_text(encoding="utf-8"))
    leaked = (set(record.get("train", [])) | set(record.get("val", []))) & set(data.test.ids)
    if leaked:
        raise DataError(f"teacher {teacher.directory} was trained on {len(leaked)} of this run's {len(data.test)} test "
                        f"examples of {data.origin}; split the data as the teacher's run did (its seed was "
                        f"{record.get('seed')}; same --val-fraction/--test-fraction)")


def unlabelled_items(path: str | Path, column: str, data: TaskData) -> list[str]:
    """Texts of a text file (one per line) or a CSV/TSV/JSONL column; validation and test texts are
    dropped (the student must not see them, not even through the teacher)."""
    if data.modality != "text":
        raise ConfigError(f"--unlabelled takes texts; {data.origin} holds {data.modality} data")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{path}: unlabelled file not found")
    if file.suffix.lower() in TABLE_SUFFIXES:
        texts = read_table(file, column, None, need_labels=False).items
    else:
        texts = [line.strip() for line in read_utf8(file).splitlines() if line.strip()]
    if not texts:
        raise DataError(f"{path}: no unlabelled texts (expected one per line)")
    held_out = set(data.val.items) | set(data.test.items)
    kept = [text for text in texts if text not in held_out]
    if len(kept) < len(texts):
        data.notes.append(f"{len(texts) - len(kept)} unlabelled text(s) equal to validation/test texts were dropped")
    return kept


def with_unlabelled(data: TaskData, texts: list[str]) -> TaskData:
    """The training split extended by unlabelled rows (label IGNORE_INDEX: no CE, KD only)."""
    if not texts:
        return data
    train = data.train
    targets = np.concatenate([train.targets, np.full(len(texts), IGNORE_INDEX, dtype=train.targets.dtype)])
    ids = [*train.ids, *(f"unlabelled:{i}" for i in range(1, len(texts) + 1))]
    return dataclasses.replace(data, train=Split([*train.items, *texts], targets, ids))


def teacher_logits(teacher: Predictor, items: list[Any], label_names: list[str], batch_size: int) -> np.ndarray:
    """Teacher logits [N, C] in `label_names` order: its head on its frozen features, which
    `cached_features` computes once per teacher weights and items and keeps on disk."""
    features = cached_features(teacher.model.backbone, items, batch_size)
    with torch.inference_mode():
        logits = teacher.model.head(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))).numpy()
    return np.ascontiguousarray(logits[:, [teacher.label_names.index(name) for name in label_names]], dtype=np.float32)


def artifact_digest(directory: Path) -> str:
    """sha256 over every file of an artifact (relative path and bytes): identifies the exact teacher."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _train_student(cfg: FitConfig, data: TaskData, strategy: Strategy, backbone: Backbone, log: Log, history: Path,
                   extras: dict[str, np.ndarray] | None = None) -> tuple[Trained, np.ndarray]:
    """Train one student (with its own frozen features if its strategy trains on them); its test outputs."""
    features, seconds = (frozen_features(backbone, data, {"test": data.test}, cfg, log) if strategy.uses_feature_cache
                         else ({}, 0.0))
    trained = train_model(cfg, data, strategy, backbone, features, log, extras=extras, history_path=history,
                          features_seconds=seconds)
    return trained, after_outputs(trained.model, strategy, data.test, features.get("test"), cfg)


def _assemble_metrics(cfg: FitConfig, data: TaskData, teacher: Predictor, settings: dict[str, Any],
                      teacher_test: np.ndarray, plain: tuple[Trained, np.ndarray],
                      distilled: tuple[Trained, np.ndarray]) -> dict[str, Any]:
    items = data.test.items
    entries = {"teacher": {"model": teacher.meta["backbone"].get("source"), "path": settings["teacher"],
                           **_model_entry(data, teacher_test, teacher.model, measure_latency(
                               teacher.model, teacher.preprocessor, items), cfg.seed)}}
    for name, (trained, logits) in (("student_plain", plain), ("student_distilled", distilled)):
        latency = measure_latency(trained.model, trained.model.backbone.preprocessor, items)
        entries[name] = {**_model_entry(data, logits, trained.model, latency, cfg.seed),
                         **_closeness(data.test.targets, teacher_test, logits, cfg.seed),
                         "trainable_params": trained.trainable, "train_seconds": trained.seconds,
                         "epochs_run": trained.result.state.epoch, "best_step": trained.result.state.best_step}
    correct = {name: _hits(logits, data.test.targets) for name, logits in (("plain", plain[1]), ("distilled", distilled[1]))}
    agrees = {name: _hits(logits, teacher_test.argmax(axis=1)) for name, logits in (("plain", plain[1]), ("distilled", distilled[1]))}
    delta = paired_bootstrap_delta(correct["plain"], correct["distilled"], seed=cfg.seed)
    return {
        "task": data.task, "data": data.origin, "student": cfg.model, "strategy": cfg.strategy,
        "n_test": len(data.test), "n_train": len(data.train), "distillation": settings, **entries,
        "delta_accuracy": delta,
        "delta_agreement": paired_bootstrap_delta(agrees["plain"], agrees["distilled"], seed=cfg.seed),
        "verdict": verdict(delta), "notes": data.notes,
    }


def _hits(logits: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (logits.argmax(axis=1) == reference).astype(np.float64)


def _model_entry(data: TaskData, logits: np.ndarray, model: torch.nn.Module, latency: dict[str, Any],
                 seed: int) -> dict[str, Any]:
    """Test metrics (accuracy with its bootstrap CI, macro-F1, per class), size and CPU speed of one model."""
    metrics = task_metrics(data.task, data.test.targets, logits, data.label_names)
    return {**metrics, "accuracy_ci95": bootstrap_ci(_hits(logits, data.test.targets), seed=seed),
            "parameters": sum(p.numel() for p in model.parameters()), "latency": latency}


def _closeness(targets: np.ndarray, teacher: np.ndarray, student: np.ndarray, seed: int) -> dict[str, Any]:
    """How close a student is to its teacher: prediction agreement, accuracy retained, paired accuracy gap."""
    teacher_accuracy = float(_hits(teacher, targets).mean())
    return {"agreement_with_teacher": float(_hits(student, teacher.argmax(axis=1)).mean()),
            "retention": float(_hits(student, targets).mean()) / teacher_accuracy if teacher_accuracy else float("nan"),
            "vs_teacher": paired_bootstrap_delta(_hits(teacher, targets), _hits(student, targets), seed=seed)}


def _write_results(run_dir: Path, cfg: FitConfig, data: TaskData, source_sha256: str, strategy: Distillation,
                   settings: dict[str, Any], distilled: Trained, metrics: dict[str, Any]) -> Path:
    """The distilled student's artifact (its teacher and settings in transferkit.json), metrics.json, report."""
    meta = artifact_meta(cfg, data, source_sha256, strategy, {"after": metrics["student_distilled"], "n_test": len(data.test)})
    meta["distillation"] = settings
    model_dir = run_dir / "model"
    save_artifact(model_dir, distilled.model, meta, distilled_model_card(meta, metrics),
                  {"split.json": (run_dir / "split.json").read_text()}, overwrite=True)
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_distill_report(run_dir, metrics)
    return model_dir


def _save_config(path: Path, cfg: FitConfig, settings: dict[str, Any]) -> None:
    """The student's resolved training options and the distillation settings, in one YAML file."""
    values = {**cfg.to_dict(), **{name: False for name in RUN_CONTROL}, "distill": settings}
    write_text_atomic(path, yaml.safe_dump(values, sort_keys=False))
