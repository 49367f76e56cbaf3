"""The speed features keep their promises.

- A frozen bottom computed once gives what computing it every step gives (outputs, and the whole
  trained model), and falls back when it cannot split or would not fit in memory.
- bf16 autocast agrees with fp32 within a stated tolerance; precision=auto follows the CPU.
- The throughput accounting counts what a step computes, and the peak is measured once.
- Threads follow the launch; a 2-process DDP run (gloo) trains like one process and writes one artifact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import make_sentences, one_torch_thread, write_csv, write_image_folder
import transferkit
from transferkit import frozen, hardware
from transferkit.cli.main import main
from transferkit.data.batching import EncodedDataset, make_collate
from transferkit.errors import ConfigError
from transferkit.frozen import FrozenBottomCollate, frozen_bottom_sets
from transferkit.heads import make_head
from transferkit.model import TransferModel
from transferkit.strategies import parse_strategy
from transferkit.train.throughput import step_flops
from transferkit.zoo import load_backbone

SRC = Path(__file__).resolve().parents[2] / "src"
BF16_LOGIT_TOLERANCE = 0.1  # max |Δ logit| between bf16 autocast and fp32 on the same weights
BF16_AGREEMENT = 0.95  # share of identical predicted classes, bf16 vs fp32, same weights


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def sentences(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("speed") / "reviews.csv", make_sentences(240, seed=1))


def items_for(modality: str, root: Path) -> list:
    if modality == "text":
        return [text for text, _ in make_sentences(12, seed=3)] + ["a", "the plot of the movie was really great fun"]
    folder = write_image_folder(root / "images", per_class=5)
    return sorted(str(p) for p in folder.rglob("*.png"))


def bottom_and_top(backbone, items: list, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(full forward, top on the stored bottom) for `items`, through the pipeline's own cache."""
    model = TransferModel(backbone, make_head("classification", backbone.feature_dim, 2, 0.0, np.array([0, 1])))
    model.frozen_bottom = k
    dataset = EncodedDataset.build(backbone.preprocessor, items, np.zeros(len(items), dtype=np.int64))
    sets = frozen_bottom_sets(model, dataset, dataset, batch_size=4, log=lambda _: None)
    assert sets is not None
    collate = make_collate(backbone.preprocessor)
    backbone.eval()
    with torch.inference_mode():
        full = backbone(collate([dataset[i] for i in range(len(items))]))
        top = backbone(sets.collate([sets.train[i] for i in range(len(items))]))
    return full, top


@pytest.mark.parametrize("model,k", [("tiny-bert", 1), ("tiny-bert", 2), ("tiny-cnn", 1), ("tiny-cnn", 2)])
def test_top_on_the_stored_bottom_reproduces_the_full_forward(model, k, tmp_path):
    backbone = load_backbone(model)
    full, top = bottom_and_top(backbone, items_for(backbone.modality, tmp_path), k)
    torch.testing.assert_close(top, full, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("model,k,options", [("minilm-l6", 4, {}), ("mpnet-base", 4, {}),
                                             ("efficientnet-lite0", 5, {"image_size": 64})])
def test_real_backbones_split_exactly(model, k, options, tmp_path):
    backbone = load_backbone(model, **options)
    full, top = bottom_and_top(backbone, items_for(backbone.modality, tmp_path), k)
    torch.testing.assert_close(top, full, atol=1e-4, rtol=0)


def test_a_frozen_bottom_runs_in_eval_mode_while_the_top_trains():
    backbone = load_backbone("tiny-bert")
    model = TransferModel(backbone, make_head("classification", backbone.feature_dim, 2, 0.1, np.array([0, 1])))
    parse_strategy("freeze-bottom:2").prepare(model)
    model.train()
    bottom = backbone.bottom_modules(2)
    assert bottom and all(not m.training for b in bottom for m in b.modules())  # embeddings and block 0: no dropout
    top_block = backbone.encoder.encoder.layer[1]
    assert top_block.training and model.head.training


@pytest.mark.parametrize("model,data", [("tiny-bert", "text"), ("tiny-cnn", "image")])
def test_cached_and_uncached_freeze_bottom_train_the_same_model(model, data, sentences, tmp_path, capsys):
    source = sentences if data == "text" else write_image_folder(tmp_path / "images", per_class=20)
    runs = {}
    for cache in (True, False):
        runs[cache] = transferkit.fit(data=str(source), model=model, strategy="freeze-bottom:1", epochs=2, batch_size=8,
                                      lr=1e-3, seed=0, skip_before=True, cache_frozen=cache, out=str(tmp_path / str(cache)))
    log = capsys.readouterr().err
    assert log.count("computed once") == 1
    weights = [load_file(str(p)) for p in (runs[c].model_dir / ("encoder/model.safetensors" if data == "text"
                                                                 else "backbone.safetensors") for c in (True, False))]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], atol=1e-5, rtol=1e-5, msg=name)
    assert runs[True].metrics["after"] == runs[False].metrics["after"]
    assert runs[True].metrics["throughput"]["examples"] == runs[False].metrics["throughput"]["examples"]


@pytest.mark.parametrize("why", ["mismatch", "over budget"])
def test_freeze_bottom_falls_back_to_the_full_forward(why, sentences, tmp_path, capsys, monkeypatch):
    options = dict(data=str(sentences), model="tiny-bert", strategy="freeze-bottom:1", epochs=1, seed=0, skip_before=True)
    uncached = transferkit.fit(**options, cache_frozen=False, quiet=True, out=str(tmp_path / "uncached"))
    if why == "mismatch":
        monkeypatch.setattr(frozen, "_difference", lambda *args: 1.0)
    else:
        monkeypatch.setattr(frozen, "MAX_BYTES", 1000)
    result = transferkit.fit(**options, out=str(tmp_path / "run"))
    log = capsys.readouterr().err
    assert "computing it every step" in log and "computed once" not in log
    # The fallback is exactly the uncached run: same trained weights, same test predictions.
    assert result.metrics["after"] == uncached.metrics["after"]
    assert load_file(str(result.model_dir / "head.safetensors")).keys() == load_file(
        str(uncached.model_dir / "head.safetensors")).keys()
    for name, tensor in load_file(str(result.model_dir / "head.safetensors")).items():
        assert torch.equal(tensor, load_file(str(uncached.model_dir / "head.safetensors"))[name])


def test_bf16_autocast_agrees_with_fp32_on_the_same_weights(sentences, tmp_path):
    result = transferkit.fit(data=str(sentences), model="tiny-bert", strategy="full", epochs=3, batch_size=8, lr=1e-3,
                             seed=0, skip_before=True, precision="fp32", quiet=True, out=str(tmp_path / "run"))
    predictor = transferkit.load(result.model_dir)
    texts = [text for text, _ in make_sentences(200, seed=9)]
    fp32 = predictor.logits(texts)
    with hardware.autocast("bf16"):
        bf16 = predictor.logits(texts)
    assert np.max(np.abs(bf16 - fp32)) <= BF16_LOGIT_TOLERANCE
    assert np.mean(bf16.argmax(1) == fp32.argmax(1)) >= BF16_AGREEMENT
    assert not np.array_equal(bf16, fp32)  # autocast really ran in bf16


def test_training_in_bf16_reaches_the_fp32_accuracy(sentences, tmp_path):
    accuracy = {}
    for precision in ("bf16", "fp32"):
        result = transferkit.fit(data=str(sentences), model="tiny-bert", strategy="full", epochs=3, batch_size=8,
                                 lr=1e-3, seed=0, skip_before=True, precision=precision, quiet=True,
                                 out=str(tmp_path / precision))
        assert result.metrics["throughput"]["precision"] == precision
        accuracy[precision] = result.metrics["after"]["accuracy"]
    assert accuracy["fp32"] >= 0.8  # the task is learnable, so agreement is not two chance levels
    assert abs(accuracy["bf16"] - accuracy["fp32"]) <= 0.1  # 4 of 48 test examples


def test_auto_precision_takes_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    assert hardware.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    assert hardware.resolve_precision("auto") == "fp32"
    assert hardware.resolve_precision("bf16") == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        hardware.resolve_precision("fp16")


def test_step_flops_counts_a_linear_layer_exactly_and_leaves_no_trace():
    layer = torch.nn.Linear(8, 3)
    batch = {"x": torch.randn(5, 8), "labels": torch.zeros(5, dtype=torch.long)}
    rng_before = torch.get_rng_state()
    flops, positions = step_flops(lambda b: {"loss": torch.nn.functional.dropout(layer(b["x"])).sum()}, layer,
                                  [batch], "fp32")
    # forward x·Wᵀ: 2·5·8·3; backward: the weight gradient only (x needs none): 2·5·8·3 again
    assert (flops, positions) == (4 * 5 * 8 * 3, 5)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert layer.weight.grad is None


def test_fit_accounts_for_useful_tokens_and_the_share_of_peak(sentences, tmp_path):
    with hardware.run_threads(1):
        hardware.cached_peak()  # what `make` does at install (bench-peak); fit itself only reads it
    result = transferkit.fit(data=str(sentences), model="tiny-bert", strategy="full", epochs=2, batch_size=8, seed=0,
                             skip_before=True, patience=0, quiet=True, out=str(tmp_path / "run"))
    t = result.metrics["throughput"]
    split = json.loads((result.run_dir / "split.json").read_text())
    texts = transferkit.data.prepare_task_data(str(sentences), seed=0).train.items
    tokens = sum(len(ids) for ids in load_backbone("tiny-bert").preprocessor.encode(texts))
    assert t["examples"] == 2 * split["sizes"]["train"]
    assert t["useful_tokens"] == 2 * tokens  # every real token of every epoch, no padding
    assert 0.0 <= t["padding_share"] < 0.2  # length buckets: little padding
    assert t["flops_per_position"] > 0 and 0 < t["peak_share"] < 1
    assert t["useful_gflops_per_s"] == pytest.approx(t["flops_per_position"] * t["useful_tokens"] / t["step_seconds"] / 1e9)
    assert f"of this machine's {t['precision']} matmul peak" in (result.run_dir / "report.md").read_text()


def test_without_a_measured_peak_fit_leaves_the_share_out_and_never_measures(sentences, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))  # nothing cached here
    monkeypatch.setattr(hardware, "measure_peak", lambda *a, **k: pytest.fail("fit measured the peak"))
    result = transferkit.fit(data=str(sentences), model="tiny-bert", strategy="linear-probe", epochs=1, seed=0,
                             quiet=True, out=str(tmp_path / "run"))
    t = result.metrics["throughput"]
    assert "peak_share" not in t and t["useful_gflops_per_s"] > 0 and t["unit"] == "features"
    assert "run `transferkit bench-peak`" in (result.run_dir / "report.md").read_text()


def test_peak_is_measured_once_then_read_from_the_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path))
    measured = []
    real = hardware.measure_peak

    def counted(n: int = 2048):
        measured.append(n)
        return real(n=256)

    monkeypatch.setattr(hardware, "measure_peak", counted)
    first = hardware.cached_peak()
    assert hardware.cached_peak() == first and len(measured) == 1
    assert main(["bench-peak"]) == 0 and len(measured) == 1
    assert "fp32 matmul peak" in capsys.readouterr().out
    assert main(["bench-peak", "--refresh", "--json"]) == 0 and len(measured) == 2
    assert json.loads(capsys.readouterr().out)["fp32_gflops"] > 0


def test_threads_follow_the_flag_the_environment_and_the_launch_and_are_put_back(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_count", lambda: 8)
    monkeypatch.delenv("TRANSFERKIT_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert hardware.thread_count() == 4  # 8 cores, 2 processes on this machine
    monkeypatch.setenv("TRANSFERKIT_THREADS", "3")
    assert hardware.thread_count() == 3 and hardware.thread_count(5) == 5
    before = torch.get_num_threads()
    with hardware.run_threads(2) as threads:
        assert threads == 2 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    monkeypatch.setenv("TRANSFERKIT_THREADS", "many")
    with pytest.raises(ConfigError, match="TRANSFERKIT_THREADS"):
        hardware.thread_count()
    with pytest.raises(ConfigError, match="threads must be a whole number >= 1, not 0"):
        hardware.thread_count(0)  # e.g. `bench-peak --threads 0`: refused, not silently the default


def test_physical_cores_count_smt_siblings_once(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    siblings = {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}  # 2 cores, 2 hyper-threads each
    real_path = hardware.Path

    def fake_path(text):
        for cpu, listing in siblings.items():
            if text == f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list":
                file = tmp_path / f"cpu{cpu}"
                file.write_text(listing + "\n")
                return file
        return real_path(text)

    monkeypatch.setattr(hardware, "Path", fake_path)
    assert hardware.cpu_count() == 2


def fit_command(data: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", "--data", str(data), "--model", "tiny-bert", "--epochs", "3", "--batch-size", "8", "--lr", "1e-3",
            "--seed", "0", "--skip-before", "--patience", "0", "--out", str(out), *extra]


def run_distributed(args: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    env.pop("TRANSFERKIT_THREADS", None)  # each process takes its share of the cores
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "transferkit.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_two_process_ddp_run_trains_like_one_process_and_writes_once(sentences, tmp_path):
    single = tmp_path / "single"
    with hardware.run_threads(max(1, hardware.cpu_count() // 2)):
        hardware.cached_peak()  # each of the two processes measures itself against a one-process peak
    assert main(fit_command(sentences, single, "--quiet")) == 0
    ddp = run_distributed(fit_command(sentences, tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stderr.count("transferkit: trained") == 1 and ddp.stdout.count("run: ") == 1  # the main process reports
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if p.is_dir()) == ["model"]
    one, two = (json.loads((run / "metrics.json").read_text()) for run in (single, tmp_path / "ddp"))
    assert two["throughput"]["processes"] == 2 and one["throughput"]["processes"] == 1
    assert two["throughput"]["threads"] == max(1, hardware.cpu_count() // 2)
    assert 0 < two["throughput"]["peak_share"] < 1  # per process, against one process's peak
    # Every example once per epoch, across the two processes (each its share of the batches).
    n_train = json.loads((single / "split.json").read_text())["sizes"]["train"]
    assert one["throughput"]["examples"] == 3 * n_train
    assert 3 * n_train <= two["throughput"]["examples"] < 3 * (n_train + 2 * 8)  # + the last batch evened out
    assert one["after"]["accuracy"] >= 0.8
    assert abs(two["after"]["accuracy"] - one["after"]["accuracy"]) <= 0.1  # 4 of 48 examples
    reloaded = transferkit.load(tmp_path / "ddp" / "model").predict(["a superb lovely movie", "an awful dull plot"])
    assert [p["label"] for p in reloaded] == ["pos", "neg"]


RANK_WEIGHTS = """
import hashlib, os, sys
from pathlib import Path
from transferkit.config import FitConfig
from transferkit.pipeline import load_task_data, train_model
from transferkit.runs import Log
from transferkit.strategies import parse_strategy
from transferkit.zoo import load_backbone

cfg = FitConfig(data=sys.argv[1], model="tiny-bert", strategy="head-then-full", epochs=3, batch_size=8, lr=1e-3,
                skip_before=True, patience=0, quiet=True)
trained = train_model(cfg, load_task_data(cfg), parse_strategy(cfg.strategy), load_backbone("tiny-bert"), {}, Log(True))
digest = hashlib.sha256(b"".join(t.numpy().tobytes() for _, t in sorted(trained.model.state_dict().items())))
Path(sys.argv[2], f"rank{os.environ['RANK']}.sha256").write_text(digest.hexdigest())
"""


def test_ddp_follows_a_strategy_that_unfreezes_during_training(sentences, tmp_path):
    """head-then-full trains every layer from epoch 2: DDP must average those gradients too, or the
    processes' models drift apart silently. Both processes end with the very same weights."""
    script = tmp_path / "rank_weights.py"
    script.write_text(RANK_WEIGHTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
               str(sentences), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [(tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
