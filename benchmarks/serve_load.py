"""Load test of `transferkit serve`: throughput and latency with and without micro-batching.

A bounded test on loopback only: for each mode a fresh server process serves the same MiniLM
artifact on 127.0.0.1; `--clients` concurrent async clients each send `--requests` requests of
one VADER movie snippet, one after another. Reported per mode: throughput (requests/s),
latency p50/p95/p99, errors (non-200 or transport failures), and the server's resident memory:
after warm-up, halfway, at the end, and its peak (VmHWM, over the whole process life).

    python benchmarks/serve_load.py [--model DIR] [--clients 32] [--requests 25] [--json out.json]

Without --model it fine-tunes minilm-l6 on builtin:vader-movie (train_size 500, 1 epoch) into
runs/bench-serve-minilm once, and reuses it afterwards. Memory figures read /proc (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN = REPO / "runs" / "bench-serve-minilm"


def artifact(model: str | None) -> Path:
    """The artifact to serve: --model, else a MiniLM fitted once (500 examples, 1 epoch)."""
    if model:
        return Path(model)
    if not (DEFAULT_RUN / "model" / "transferkit.json").is_file():
        import transferkit

        print(f"fitting minilm-l6 on builtin:vader-movie (500 examples, 1 epoch) into {DEFAULT_RUN}", file=sys.stderr)
        transferkit.fit(data="builtin:vader-movie", model="minilm-l6", train_size=500, epochs=1, seed=0,
                        out=str(DEFAULT_RUN), overwrite=True, quiet=True)
    return DEFAULT_RUN / "model"


def snippets(count: int) -> list[str]:
    """`count` real movie-review snippets (VADER), the same every run."""
    from transferkit.data.builtin import load_builtin

    items = load_builtin("vader-movie", "classification").items
    rng = np.random.default_rng(0)
    return [items[i] for i in rng.choice(len(items), size=count, replace=False)]


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: Path, batching: bool, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "transferkit.cli.main", "serve", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", *([] if batching else ["--no-batching"])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    env.pop("TRANSFERKIT_TOKEN", None)
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    process.kill()
    raise SystemExit(f"server not ready after 300 s; see {log}")


async def load(url: str, texts: list[list[str]], deadline: float) -> tuple[list[float], int, int]:
    """Each client sends its texts one request at a time; (latencies of successes, errors, unsent)."""
    latencies: list[float] = []
    errors = 0
    unsent = 0

    async def client(http: httpx.AsyncClient, mine: list[str]) -> None:
        nonlocal errors, unsent
        for i, text in enumerate(mine):
            if time.monotonic() > deadline:
                unsent += len(mine) - i
                return
            started = time.perf_counter()
            try:
                response = await http.post("/predict", json={"inputs": [text]})
                ok = response.status_code == 200 and len(response.json()["predictions"]) == 1
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=len(texts), max_keepalive_connections=len(texts))
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as http:
        await asyncio.gather(*(client(http, mine) for mine in texts))
    return latencies, errors, unsent


def run_mode(model: Path, batching: bool, args: argparse.Namespace, texts: list[str], workdir: Path) -> dict:
    process, url = start_server(model, batching, workdir / f"server-{'batching' if batching else 'single'}.log")
    try:
        per_client = [texts[c * args.requests:(c + 1) * args.requests] for c in range(args.clients)]
        deadline = time.monotonic() + args.max_seconds
        asyncio.run(load(url, [t[: max(1, args.requests // 5)] for t in per_client], deadline))  # warm-up
        rss_start = memory_kib(process.pid)["VmRSS"]
        half = args.requests // 2
        started = time.perf_counter()
        first = asyncio.run(load(url, [t[:half] for t in per_client], deadline))
        rss_mid = memory_kib(process.pid)["VmRSS"]
        second = asyncio.run(load(url, [t[half:] for t in per_client], deadline))
        seconds = time.perf_counter() - started
        memory = memory_kib(process.pid)
        stats = httpx.get(f"{url}/model", timeout=10).json()["stats"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    latencies = np.asarray(first[0] + second[0]) * 1000
    return {
        "mode": "micro-batching" if batching else "one request, one forward",
        "requests": len(latencies), "errors": first[1] + second[1], "unsent": first[2] + second[2],
        "seconds": seconds, "throughput_rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "rss_start_mib": rss_start / 1024, "rss_mid_mib": rss_mid / 1024, "rss_end_mib": memory["VmRSS"] / 1024,
        "peak_rss_mib": memory["VmHWM"] / 1024, "model_calls": stats["batches"], "largest_batch": stats["largest_batch"],
    }


def table(rows: list[dict]) -> str:
    lines = ["| mode | requests | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms | model calls | "
             "RSS after warm-up → half → end (MiB) | peak RSS (MiB) |", "|---" * 10 + "|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['requests']} | {r['errors']} | {r['throughput_rps']:.1f} | {r['p50_ms']:.0f} | "
                     f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['model_calls']} | "
                     f"{r['rss_start_mib']:.0f} → {r['rss_mid_mib']:.0f} → {r['rss_end_mib']:.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="artifact to serve (default: fit MiniLM once into runs/bench-serve-minilm)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=25, help="requests per client (one text each)")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop sending after this long, per mode")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    model = artifact(args.model)
    texts = snippets(args.clients * args.requests)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as workdir:
        rows = [run_mode(model, batching, args, texts, Path(workdir)) for batching in (True, False)]
    print(f"{args.clients} clients x {args.requests} requests (1 text each), {os.cpu_count()} CPUs, model {model}")
    print(table(rows))
    for row in rows:
        if row["unsent"]:
            print(f"{row['mode']}: {row['unsent']} requests not sent within --max-seconds")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
