"""`transferkit compare`: several strategies on the same data, split and seed, in one report.

    strategies × seeds → one `fit` per pair, each in a fresh process → compare.json (a record per
    run, written after every run) → report.md/.html (table, accuracy vs trainable parameters)

For one seed s every strategy sees the same split (seeded by s) and the same fit options; more
seeds repeat the whole comparison on other splits and initialisations (mean ± std). A fresh
process per run makes its peak memory honest: the peak resident set size (ru_maxrss) of a process
only grows, so runs sharing one would report the largest run so far. It covers the whole run:
imports, data, model, training and evaluation. Every input is checked before the first run;
`resume` skips the runs compare.json already holds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import FitConfig
from .errors import ConfigError, OutputExistsError, TransferkitError
from .io_utils import write_json_atomic
from .runs import Log

RECORD_FIELDS = ("strategy", "seed", "accuracy", "macro_f1", "trainable_params", "total_params", "train_seconds",
                 "peak_memory_mb", "artifact_mb")
NOT_FOR_COMPARE = ("strategy", "out", "resume", "overwrite")  # compare sets these per run
MB = 1e6


@dataclass
class ComparisonResult:
    out: Path
    records: list[dict[str, Any]]
    summary: list[dict[str, Any]]


def split_strategies(text: str) -> list[str]:
    """'linear-probe,freeze-bottom:4,lora:r=4,alpha=8,full' → one spec per strategy: a comma
    followed by `key=value` continues the previous spec's options, anything else starts a spec."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        continuation = re.match(r"^[A-Za-z_][\w]*=", piece) is not None
        if continuation and specs:
            specs[-1] += "," + piece
        elif piece:
            specs.append(piece)
    return specs


def compare(strategies: str | list[str], seeds: int = 1, out: str | Path = "runs/compare", *,
            overwrite: bool = False, resume: bool = False, **fit_options: Any) -> ComparisonResult:
    """Run every strategy × seed with the same `fit_options` (any FitConfig field) and report."""
    from .evaluation.strategy_report import summarise, write_compare_report

    specs = split_strategies(strategies) if isinstance(strategies, str) else list(strategies)
    base = _validate(specs, seeds, fit_options)
    out = Path(out)
    done = _claim(out, overwrite, resume)
    log = Log(base.quiet)
    records: list[dict[str, Any]] = []
    for seed in range(base.seed, base.seed + seeds):
        for spec in specs:
            record = done.get((spec, seed))
            if record is None:
                log(f"compare: {spec}, seed {seed}")
                record = _run_isolated(dataclasses.replace(base, strategy=spec, seed=seed, out=str(_run_dir(out, spec, seed)),
                                                           overwrite=True).to_dict())
            log(f"compare: {spec} (seed {seed}): {record['trainable_params']:,} of {record['total_params']:,} parameters "
                f"trained ({100 * record['trainable_params'] / record['total_params']:.2f}%), test accuracy "
                f"{record['accuracy']:.4f}, {record['train_seconds']:.1f} s")
            records.append(record)
            write_json_atomic(out / "compare.json", records)
    summary = summarise(records)
    write_compare_report(out, summary, _context(base, seeds))
    log(f"report: {out / 'report.html'}")
    return ComparisonResult(out, records, summary)


def _validate(specs: list[str], seeds: int, fit_options: dict[str, Any]) -> FitConfig:
    """Everything checked before any run: options, strategies, data, model, compatibility."""
    from .pipeline import check_compatible, load_task_data
    from .strategies import parse_strategy
    from .zoo import load_backbone

    given = sorted(set(fit_options) & set(NOT_FOR_COMPARE))
    if given:
        raise ConfigError(f"compare sets {', '.join(given)} itself; drop it")
    if not specs or len(set(specs)) != len(specs):
        raise ConfigError("--strategies needs one or more different strategies, e.g. linear-probe,full,lora")
    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    base = FitConfig.from_dict({"skip_before": True, **fit_options})
    if base.task != "classification":
        raise ConfigError("compare reports accuracy and macro-F1: it needs a classification task")
    strategies = [parse_strategy(spec) for spec in specs]
    data = load_task_data(base)
    backbone = load_backbone(base.model, max_length=base.max_length, image_size=base.image_size)
    for spec, strategy in zip(specs, strategies):
        check_compatible(backbone, strategy, data, dataclasses.replace(base, strategy=spec))
    return base


def _claim(out: Path, overwrite: bool, resume: bool) -> dict[tuple[str, int], dict[str, Any]]:
    """The finished runs to keep (resume), after refusing to replace a comparison by accident."""
    if resume and (out / "compare.json").is_file():
        return {(r["strategy"], r["seed"]): r for r in json.loads((out / "compare.json").read_text(encoding="utf-8"))}
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out} is not empty; pass --overwrite to replace it or --resume to continue it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return {}


def _run_dir(out: Path, spec: str, seed: int) -> Path:
    return out / "runs" / re.sub(r"[^A-Za-z0-9._=-]+", "_", spec) / f"seed-{seed}"


def _run_isolated(config: dict[str, Any]) -> dict[str, Any]:
    """One fit in a new Python process (`python -m transferkit.comparison`); its record."""
    with tempfile.TemporaryDirectory(prefix="transferkit-compare-") as work:
        config_file, record_file = Path(work) / "config.json", Path(work) / "record.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        package_root = str(Path(__file__).resolve().parents[1])  # the same transferkit, importable there
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-m", "transferkit.comparison", str(config_file), str(record_file)],
                              env=env, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise TransferkitError(f"compare: the run of {config['strategy']} (seed {config['seed']}) failed with exit "
                                   f"status {done.returncode}; its messages are above, its directory is {config['out']}")
        return json.loads(record_file.read_text(encoding="utf-8"))


def run_and_measure(config: dict[str, Any]) -> dict[str, Any]:
    """Run one fit in this process and return its compare record (peak memory: this process's)."""
    import resource

    from .evaluation.strategy_report import confusion_bootstrap
    from .pipeline import fit

    result = fit(**config)
    metrics = result.metrics
    artifact_bytes = sum(p.stat().st_size for p in result.model_dir.rglob("*") if p.is_file())
    return {
        "strategy": config["strategy"], "seed": config["seed"],
        "accuracy": metrics["after"]["accuracy"], "macro_f1": metrics["after"]["macro_f1"],
        "trainable_params": metrics["trainable_params"], "total_params": metrics["total_params"],
        "train_seconds": metrics["train_seconds"],
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB,  # Linux: KiB
        "artifact_mb": artifact_bytes / MB,
        **confusion_bootstrap(metrics["after"]["confusion_matrix"], seed=config["seed"]),
        "confusion_matrix": metrics["after"]["confusion_matrix"], "label_names": list(metrics["after"]["per_class"]),
        "epochs_run": metrics["epochs_run"], "run_dir": str(result.run_dir),
    }


def _context(base: FitConfig, seeds: int) -> dict[str, Any]:
    return {"data": base.data or base.train, "model": base.model, "seeds": seeds, "epochs": base.epochs,
            "train_size": base.train_size, "lr": base.lr, "batch_size": base.batch_size, "image_size": base.image_size}


if __name__ == "__main__":  # the child of _run_isolated: CONFIG.json in, RECORD.json out
    try:
        record = run_and_measure(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    except TransferkitError as exc:
        print(f"transferkit: error: {exc}", file=sys.stderr)
        sys.exit(2)
    Path(sys.argv[2]).write_text(json.dumps(record), encoding="utf-8")
