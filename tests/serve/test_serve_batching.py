"""Micro-batching in a real server: concurrent requests share model calls; with --no-batching
every request is its own call. The counters come from GET /model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serving import Server, start_server, text_artifact

CLIENTS = 16


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_artifact(tmp_path_factory)


async def _burst(server: Server) -> tuple[list[dict], dict, dict]:
    """CLIENTS concurrent requests of one text each; the model's counters before and after."""
    async with server.async_client() as client:
        before = (await client.get("/model")).json()["stats"]
        responses = await asyncio.gather(*(client.post("/predict", json={"inputs": [f"fun {i}"]})
                                           for i in range(CLIENTS)))
        after = (await client.get("/model")).json()["stats"]
    assert [r.status_code for r in responses] == [200] * CLIENTS
    return [r.json() for r in responses], before, after


@pytest.mark.parametrize("batching", [True, False], ids=["batching", "no-batching"])
def test_concurrent_requests_share_model_calls_only_when_batching(artifact: Path, tmp_path: Path,
                                                                  batching: bool) -> None:
    # A long window makes the outcome independent of how fast this machine is.
    flags = ["--batch-window-ms", "300", "--max-batch", "64"] + ([] if batching else ["--no-batching"])
    server = start_server(tmp_path / "server.log", "--model", artifact, *flags)
    try:
        answers, before, after = asyncio.run(_burst(server))
    finally:
        server.stop()
    assert all(len(a["predictions"]) == 1 for a in answers)
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == CLIENTS and after["items"] - before["items"] == CLIENTS
    if batching:
        assert batches <= CLIENTS // 4 and after["largest_batch"] >= 4
    else:
        assert batches == CLIENTS and after["largest_batch"] == 1
