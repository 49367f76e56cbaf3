"""What this machine can do: native bf16, the threads a process should use, its matmul peak.

The peak is the compute roof a training step is measured against (the roofline model: Williams,
Waterman & Patterson, "Roofline: an insightful visual performance model", CACM 2009): the rate
of one large `torch.matmul` in fp32 and in bf16 on this CPU with this process's threads (what
PyTorch's oneDNN/MKL kernels reach on dense math), so "share of peak" says how much of a step is
useful arithmetic rather than padding, memory traffic or Python. `transferkit bench-peak`
measures it once and caches it per CPU model, thread count and torch version (`make` runs it at
install); `fit` only reads the cache, so a busy machine never measures it in passing.

bf16 autocast pays only where the CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere
oneDNN emulates it, about a hundred times slower than fp32 (`transferkit bench-peak` on an
idle AVX2-only EPYC, 2 threads: 1.3 GFLOP/s bf16 vs 133.1 fp32), so `precision=auto` takes bf16
only on such CPUs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .config import PRECISIONS
from .errors import ConfigError
from .io_utils import cache_home, write_json_atomic


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic instructions (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(requested: str) -> str:
    """`auto` → bf16 where the CPU has native bf16, else fp32; `bf16`/`fp32` are taken as asked."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "auto":
        return "bf16" if native_bf16() else "fp32"
    return requested


def autocast(precision: str) -> torch.autocast:
    """The context a training step runs in: bf16 autocast (matmuls and convolutions in bf16,
    reductions and the loss in fp32, weights kept in fp32) or a disabled one for fp32."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def cpu_count() -> int:
    """Physical cores this process may run on: its affinity mask (which containers and taskset
    set), counting SMT siblings of one core once — one compute thread per core, as PyTorch's own
    default; a second thread on a hyper-thread only contends for the same FMA units."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in allowed:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            siblings = str(cpu)  # no topology exposed (some VMs): every CPU is its own core
        cores.add(siblings)
    return max(1, len(cores))


def local_processes() -> int:
    """Processes sharing this machine in a distributed launch (torchrun / accelerate launch)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def thread_count(requested: int | None = None) -> int:
    """The intra-op threads a run should use: `requested`, else $TRANSFERKIT_THREADS, else this
    machine's cores divided among the processes a distributed launch starts here (oversubscribed
    cores thrash; torchrun's blanket OMP_NUM_THREADS=1 leaves cores idle)."""
    if requested is not None and requested < 1:
        raise ConfigError(f"threads must be a whole number >= 1, not {requested}")
    from_env = os.environ.get("TRANSFERKIT_THREADS", "").strip()
    if requested is None and from_env:
        if not from_env.isdigit() or int(from_env) < 1:
            raise ConfigError(f"TRANSFERKIT_THREADS must be a whole number >= 1, not {from_env!r}")
        requested = int(from_env)
    return requested or max(1, cpu_count() // local_processes())


@contextlib.contextmanager
def run_threads(requested: int | None = None) -> Iterator[int]:
    """PyTorch's intra-op threads set to `thread_count(requested)` for the run inside, and put back
    afterwards, so a `fit(threads=1)` in a notebook does not slow everything after it."""
    before, threads = torch.get_num_threads(), thread_count(requested)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class Peak:
    """Measured dense-matmul rates of this machine (GFLOP/s) and how they were measured."""

    fp32_gflops: float
    bf16_gflops: float
    native_bf16: bool
    threads: int
    cpu: str
    torch: str
    matrix: dict[str, int]
    measured: str

    def for_precision(self, precision: str) -> float:
        return self.bf16_gflops if precision == "bf16" else self.fp32_gflops


def matmul_gflops(dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """Median rate of an n×n by n×n matmul (2n³ FLOPs), after a warm-up."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e9


def measure_peak(n: int = 2048) -> Peak:
    """Measure fp32 and bf16 matmul peaks with this process's threads (seconds, not minutes:
    without native bf16 the bf16 rate is measured on a small matrix, as emulation is very slow)."""
    native = native_bf16()
    bf16_n = n if native else 256
    return Peak(fp32_gflops=matmul_gflops(torch.float32, n), bf16_gflops=matmul_gflops(torch.bfloat16, bf16_n),
                native_bf16=native, threads=torch.get_num_threads(), cpu=cpu_model(), torch=torch.__version__,
                matrix={"fp32": n, "bf16": bf16_n}, measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _peak_path() -> Path:
    return cache_home() / "peak.json"


def _peak_key() -> str:
    return f"{cpu_model()}|threads={torch.get_num_threads()}|torch={torch.__version__}"


def _peak_entries() -> dict[str, Any]:
    try:
        entries = json.loads(_peak_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def known_peak() -> Peak | None:
    """This machine's cached peak for the current threads and torch, or None if never measured."""
    entry = _peak_entries().get(_peak_key())
    try:
        return Peak(**entry) if isinstance(entry, dict) else None
    except TypeError:  # written by another version of transferkit
        return None


def cached_peak(refresh: bool = False) -> Peak:
    """This machine's peak from the cache, measured (and cached) when absent or `refresh`."""
    peak = None if refresh else known_peak()
    if peak is None:
        peak = measure_peak()
        write_json_atomic(_peak_path(), {**_peak_entries(), _peak_key(): asdict(peak)})
    return peak
