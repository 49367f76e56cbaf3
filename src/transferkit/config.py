"""The typed run configuration: one dataclass, YAML on disk, CLI flags mapped 1:1.

`FitConfig` is the single source of truth for a run. The CLI builds its flags from the fields
(so every flag has a matching Python keyword of `transferkit.fit`), `config.yaml` in the run
directory is the resolved config, and `transferkit fit config.yaml` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with a help string (shown by the CLI and in docs)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


def _coerce(name: str, kind: str, value: Any) -> Any:
    """Check `value` against its field's annotation, converting only where it is unambiguous.

    YAML 1.1 reads `lr: 5e-5` (no dot) as a string, so numeric strings become numbers, as on the
    command line; paths become strings; a comma-separated string becomes a list.
    """
    base = kind.split("|")[0].strip()
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"{name} needs a value")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if base in ("int", "float"):
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ConfigError(f"{name} must be a {'whole ' if base == 'int' else ''}number, not {value!r}")
        if base == "int":
            if number != int(number):
                raise ConfigError(f"{name} must be a whole number, not {value!r}")
            return int(number)
        return float(number)
    if base.startswith("list"):
        if isinstance(value, str):
            value = [p for p in value.split(",") if p]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, os.PathLike)) for v in value):
            raise ConfigError(f"{name} must be a list of strings, not {value!r}")
        return [os.fspath(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{name} must be a string, not {value!r}")
    return str(value)


RUN_CONTROL = ("overwrite", "resume")  # how to treat the output directory, not part of the run
PRECISIONS = ("auto", "bf16", "fp32")  # training arithmetic (hardware.resolve_precision)


@dataclass
class FitConfig:
    """Everything that defines a fine-tuning run."""

    # --- data -----------------------------------------------------------------------------
    data: str | None = opt(None, "labelled data: a CSV/TSV/JSONL file, an image folder, or builtin:NAME")
    train: str | None = opt(None, "training file (instead of --data; then --val/--test are used as given)")
    val: str | None = opt(None, "validation file")
    test: str | None = opt(None, "test file")
    text_column: str = opt("text", "column holding the text")
    label_column: str = opt("label", "column holding the label")
    task: str = opt("classification", "classification or regression", choices=("classification", "regression"))
    val_fraction: float = opt(0.1, "share of the data held out for validation when splitting")
    test_fraction: float = opt(0.2, "share of the data held out for testing when splitting")
    train_size: int | None = opt(None, "use at most this many training examples (stratified subsample)")
    eval_data: list[str] = opt([], "extra datasets to evaluate BEFORE/AFTER on, e.g. builtin:vader-amazon")
    # --- model and adaptation -----------------------------------------------------------------
    model: str = opt("minilm-l6", "source model: a zoo name, dir:PATH or hf:ORG/NAME")
    strategy: str = opt("full", "adaptation strategy, e.g. linear-probe, freeze-bottom:4, full, head-then-full, "
                                "gradual-unfreeze, lora:r=8, ia3, prefix, bitfit; +l2sp:alpha=0.01 adds L2-SP")
    max_length: int = opt(128, "maximum tokens per text (longer texts are truncated)")
    image_size: int | None = opt(None, "image side in pixels (default: the backbone's own)")
    dropout: float = opt(0.1, "dropout before the task head")
    # --- optimisation --------------------------------------------------------------------------
    epochs: int = opt(3, "training epochs")
    lr: float = opt(5e-5, "learning rate of the backbone")
    head_lr: float = opt(1e-3, "learning rate of the task head")
    layer_decay: float = opt(1.0, "layer-wise LR decay: layer group g of G trains at lr·decay^(G−1−g) (1: off; e.g. 0.8)")
    batch_size: int = opt(16, "training batch size")
    eval_batch_size: int = opt(64, "batch size for evaluation and feature extraction")
    optimizer: str = opt("adamw", "adamw or sgd", choices=("adamw", "sgd"))
    momentum: float = opt(0.9, "momentum for sgd")
    weight_decay: float = opt(0.01, "decoupled weight decay (not applied to biases and norms)")
    scheduler: str = opt("linear", "learning-rate decay after warmup", choices=("linear", "cosine", "constant"))
    warmup_ratio: float = opt(0.1, "share of steps spent warming the learning rate up")
    grad_clip: float = opt(1.0, "clip the gradient norm to this value (0 disables)")
    seed: int = opt(0, "random seed: same seed, same result on CPU")
    patience: int = opt(2, "early stopping: validations without improvement before stopping (0 disables)")
    metric: str = opt("auto", "validation metric for early stopping (auto: accuracy or rmse)")
    eval_every: int = opt(0, "validate every N optimizer steps (0: once per epoch)")
    bucket: bool = opt(True, "length-bucketed batching for text (less padding)")
    # --- speed (none of these changes what is computed beyond rounding; see README "Speed") --------
    precision: str = opt("auto", "training arithmetic: bf16 autocast or fp32 (auto: bf16 where the CPU has "
                                 "native bf16, AVX512-BF16/AMX; else fp32)", choices=PRECISIONS)
    cache_frozen: bool = opt(True, "freeze-bottom:K: compute the frozen bottom's outputs once and train the top on them")
    threads: int | None = opt(None, "CPU threads per process (default: the CPUs available / processes on this machine)")
    # --- run -------------------------------------------------------------------------------------
    skip_before: bool = opt(False, "skip the BEFORE (unadapted) evaluation")
    out: str | None = opt(None, "run directory (default runs/<timestamp>-<name>)")
    quiet: bool = opt(False, "no progress output")
    resume: bool = opt(False, "resume an interrupted run from its last checkpoint")
    overwrite: bool = opt(False, "replace an existing run in --out")

    def __post_init__(self) -> None:
        for f in fields(self):  # type checks first, so a YAML typo is a ConfigError, not a TypeError
            setattr(self, f.name, _coerce(f.name, str(f.type), getattr(self, f.name)))
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.head_lr > 0, "learning rates must be > 0"),
            (0 < self.layer_decay <= 1, "layer_decay must be in (0, 1]"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1, "val/test fractions must be in (0, 1)"),
            (self.val_fraction + self.test_fraction < 0.9, "val_fraction + test_fraction must leave data to train on"),
            (self.patience >= 0 and self.eval_every >= 0, "patience and eval_every must be >= 0"),
            (self.train_size is None or self.train_size >= 2, "train_size must be >= 2"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.data is not None or self.train is not None, "give --data PATH|builtin:NAME, or --train FILE"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, not {getattr(self, f.name)!r}")

    @property
    def validation_metric(self) -> str:
        if self.metric != "auto":
            return self.metric
        return "accuracy" if self.task == "classification" else "rmse"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save_yaml(self, path: Path) -> None:
        """The resolved config; run-control flags are saved off, so re-running a saved config
        never silently replaces or resumes another run."""
        from .io_utils import write_text_atomic

        values = {**self.to_dict(), **{name: False for name in RUN_CONTROL}}
        write_text_atomic(Path(path), yaml.safe_dump(values, sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> FitConfig:
        """Load a config file; keyword overrides win (that is how CLI flags override YAML)."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value")
        return cls.from_dict({**raw, **overrides}, where=str(path))

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "arguments") -> FitConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}")
        return cls(**values)
