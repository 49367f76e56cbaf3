"""Serving the registry's promoted version: reload under load (POST /admin/reload and SIGHUP)
without a dropped request, a failed reload that keeps the old model, and kill -9 mid-request
followed by a restart on an intact registry."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving import Server, assert_json_error, cli_env, image_artifact, start_server, text_artifact
from transferkit.registry import Registry


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_artifact(tmp_path_factory)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, artifact: Path) -> Registry:
    registry = Registry(tmp_path_factory.mktemp("registry") / "models")
    registry.register(artifact)
    registry.register(artifact, parent="v1", data_fingerprint="second-batch")
    registry.promote("v1")
    return registry


@pytest.fixture(scope="module")
def server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the reload tests; each test first makes it serve the version it starts from."""
    log = tmp_path_factory.mktemp("registry-server") / "server.log"
    running = start_server(log, "--registry", registry.root, "--batch-window-ms", "2")
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()


def serve(server: Server, registry: Registry, version: str) -> None:
    """Promote `version` and reload, so a test starts from a known served version."""
    registry.promote(version)
    with server.client() as client:
        assert client.post("/admin/reload").json()["version"] == version


async def _hammer(server: Server, stop: asyncio.Event, clients: int = 8) -> list[list[tuple[int, str | None]]]:
    """`clients` loops of requests until `stop`; each loop's (status, version) in order."""
    async def loop(client: httpx.AsyncClient, seen: list) -> None:
        while not stop.is_set():
            response = await client.post("/predict", json={"inputs": ["fun", "dull"]})
            seen.append((response.status_code, response.json().get("version")))

    seen: list[list] = [[] for _ in range(clients)]
    async with server.async_client() as client:
        await asyncio.gather(*(loop(client, s) for s in seen))
    return seen


async def _reload_under_load(server: Server, switch, old: str) -> list[list[tuple[int, str | None]]]:
    """Requests from 8 concurrent loops while `switch()` makes the server change from `old`."""
    stop = asyncio.Event()
    hammer = asyncio.ensure_future(_hammer(server, stop))
    await asyncio.sleep(1.0)
    await asyncio.get_running_loop().run_in_executor(None, switch)
    deadline = time.monotonic() + 60
    async with server.async_client() as client:
        while (await client.get("/model")).json()["version"] == old and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    stop.set()
    return await hammer


def _assert_switched_without_drops(seen: list[list[tuple[int, str | None]]], old: str, new: str) -> None:
    for loop in seen:
        assert loop and all(status == 200 for status, _ in loop), loop
        versions = [version for _, version in loop]
        assert versions[0] == old and versions[-1] == new
        assert versions == sorted(versions, key=lambda v: v == new)  # switched once, never back


def test_model_shows_the_registry_record(server: Server, registry: Registry) -> None:
    serve(server, registry, "v1")
    with server.client() as client:
        info = client.get("/model").json()
        assert info["version"] == "v1" and info["source"] == "registry"
        assert info["registry"]["parent"] is None and len(info["registry"]["data_fingerprint"]) == 64
        assert client.post("/predict", json={"inputs": ["fun"], "model": "v1"}).status_code == 200
        assert_json_error(client.post("/predict", json={"inputs": ["fun"], "model": "v2"}), 409, "version_not_served")
        assert client.post("/admin/reload").json() == {"reloaded": False, "version": "v1", "previous": "v1"}


def test_reload_swaps_the_promoted_version_under_load(server: Server, registry: Registry) -> None:
    serve(server, registry, "v1")

    def promote_and_reload() -> None:
        registry.promote("v2")
        with server.client() as client:
            assert client.post("/admin/reload").json() == {"reloaded": True, "version": "v2", "previous": "v1"}

    _assert_switched_without_drops(asyncio.run(_reload_under_load(server, promote_and_reload, "v1")), "v1", "v2")
    with server.client() as client:
        assert client.get("/model").json()["registry"]["parent"] == "v1"


def test_sighup_reloads_after_a_rollback(server: Server, registry: Registry) -> None:
    serve(server, registry, "v1")
    serve(server, registry, "v2")
    assert registry.rollback().version == "v1"

    def sighup() -> None:
        os.kill(server.process.pid, signal.SIGHUP)

    seen = asyncio.run(_reload_under_load(server, sighup, "v2"))
    _assert_switched_without_drops(seen, "v2", "v1")
    assert server.alive()


def test_a_failed_reload_keeps_serving_the_old_version(server: Server, registry: Registry, artifact: Path) -> None:
    serve(server, registry, "v1")
    broken = registry.register(artifact, parent="v1")
    (broken.path / "head.safetensors").write_bytes(b"not safetensors")
    registry.promote(broken.version)
    with server.client() as client:
        error = assert_json_error(client.post("/admin/reload"), 409, "reload_failed")
        assert "still serving v1" in error["message"]
        assert client.post("/predict", json={"inputs": ["fun"]}).json()["version"] == "v1"
    serve(server, registry, "v1")  # back to a loadable version for the other tests


def test_a_reload_that_would_change_the_modality_is_refused(server: Server, registry: Registry,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    serve(server, registry, "v1")
    images = registry.register(image_artifact(tmp_path_factory))
    registry.promote(images.version)
    with server.client() as client:
        error = assert_json_error(client.post("/admin/reload"), 409, "reload_failed")
        assert "image model" in error["message"] and "still serving v1" in error["message"]
        assert client.post("/predict", json={"inputs": ["fun"]}).json()["version"] == "v1"
    serve(server, registry, "v1")


def test_serving_a_registry_with_nothing_promoted_fails_in_one_line(tmp_path: Path, artifact: Path) -> None:
    Registry(tmp_path / "models").register(artifact)
    result = subprocess.run([sys.executable, "-m", "transferkit.cli.main", "serve", "--registry",
                             str(tmp_path / "models"), "--port", "1"], capture_output=True, text=True,
                            env=cli_env(), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"transferkit: error: {tmp_path / 'models'}: no version is promoted; run `transferkit promote VERSION`"]


def _registry_state(registry: Registry) -> tuple:
    with sqlite3.connect(registry.db_path) as connection:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return check, registry.versions(), registry.history(), registry.promoted()


def test_kill_9_mid_request_then_restart_on_the_same_registry(artifact: Path, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.register(artifact)
    registry.register(artifact, parent="v1")
    registry.promote("v1")
    registry.promote("v2")
    before = _registry_state(registry)
    server = start_server(tmp_path / "first.log", "--registry", registry.root)
    outcomes: list[str] = []

    def client_loop() -> None:
        deadline = time.monotonic() + 60
        with server.client() as client:
            while time.monotonic() < deadline:
                try:
                    client.post("/predict", json={"inputs": ["fun"] * 8})
                    client.post("/admin/reload")
                    outcomes.append("ok")
                except httpx.TransportError:
                    outcomes.append("cut")
                    return

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.kill()  # SIGKILL while requests and reloads are in flight
    for thread in threads:
        thread.join(timeout=60)
    assert "ok" in outcomes and "cut" in outcomes

    assert _registry_state(registry) == before and before[0] == "ok"
    restarted = start_server(tmp_path / "second.log", "--registry", registry.root)
    try:
        with restarted.client() as client:
            assert client.post("/predict", json={"inputs": ["fun"]}).json()["version"] == "v2"
    finally:
        restarted.stop()
    registry.rollback()  # and the registry is still writable
    assert registry.promoted().version == "v1"
