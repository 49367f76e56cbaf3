"""What this machine can do: native bf16, the threads a process should use, its matmul peak.

The peak is the roofline a training step is measured against: the rate of one large
`torch.matmul` in fp32 and in bf16 on this CPU with this process's threads (what PyTorch's
oneDNN/MKL kernels reach on dense math, so "share of peak" says how much of a step is useful
arithmetic rather than padding, memory traffic or Python). It is measured once and cached per
CPU model, thread count and torch version (`transferkit bench-peak`).

bf16 autocast pays only where the CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere
oneDNN emulates it, hundreds of times slower than fp32 (measured on an AVX2-only EPYC: 0.29
GFLOP/s bf16 vs 115 fp32), so `precision=auto` takes bf16 only on such CPUs.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io_utils import cache_home, write_json_atomic

PRECISIONS = ("auto", "bf16", "fp32")


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
    """CPUs this process may run on (its affinity mask, which containers and taskset set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_processes() -> int:
    """Processes sharing this machine in a distributed launch (torchrun / accelerate launch)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def configure_threads(requested: int | None = None) -> int:
    """Set PyTorch's intra-op threads: `requested`, else $TRANSFERKIT_THREADS, else this machine's
    CPUs divided among the processes a distributed launch starts here (oversubscribed cores
    thrash; torchrun's blanket OMP_NUM_THREADS=1 leaves cores idle). Returns the count."""
    from_env = os.environ.get("TRANSFERKIT_THREADS", "").strip()
    if requested is None and from_env:
        if not from_env.isdigit() or int(from_env) < 1:
            raise ConfigError(f"TRANSFERKIT_THREADS must be a whole number >= 1, not {from_env!r}")
        requested = int(from_env)
    threads = requested or max(1, cpu_count() // local_processes())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


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


def cached_peak(refresh: bool = False) -> Peak:
    """This machine's peak from the cache, measured (and cached) when absent or `refresh`."""
    path = _peak_path()
    try:
        entries: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        entries = {}
    key = _peak_key()
    if not refresh and isinstance(entries.get(key), dict):
        try:
            return Peak(**entries[key])
        except TypeError:
            pass  # written by another version: measure again
    peak = measure_peak()
    entries[key] = asdict(peak)
    write_json_atomic(path, entries)
    return peak
