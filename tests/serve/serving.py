"""Helpers for the service tests: tiny artifacts (fitted once per test process) and a real
`transferkit serve` subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import make_sentences, write_csv, write_image_folder

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-1234"
_ARTIFACTS: dict[str, Path] = {}


def cli_env(**extra: str) -> dict[str, str]:
    """The subprocess environment: the source tree importable, offline, one torch thread."""
    env = {k: v for k, v in os.environ.items() if k != "TRANSFERKIT_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def text_artifact(factory: pytest.TempPathFactory) -> Path:
    """A tiny-bert artifact reading at most 16 tokens per text (so truncation is easy to provoke)."""
    if "text" not in _ARTIFACTS:
        import transferkit

        root = factory.mktemp("text-artifact")
        data = write_csv(root / "reviews.csv", make_sentences(120))
        result = transferkit.fit(data=str(data), model="tiny-bert", epochs=1, max_length=16, seed=0,
                                 out=str(root / "run"), quiet=True)
        _ARTIFACTS["text"] = result.model_dir
    return _ARTIFACTS["text"]


def image_artifact(factory: pytest.TempPathFactory) -> Path:
    """A tiny-cnn artifact (32x32 inputs) fitted on bright and dark noise images."""
    if "image" not in _ARTIFACTS:
        import transferkit

        root = factory.mktemp("image-artifact")
        folder = write_image_folder(root / "images")
        result = transferkit.fit(data=str(folder), model="tiny-cnn", epochs=1, seed=0, out=str(root / "run"),
                                 quiet=True)
        _ARTIFACTS["image"] = result.model_dir
    return _ARTIFACTS["image"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`transferkit serve ARGS` in a subprocess, logging to a file, bound to 127.0.0.1."""

    def __init__(self, log_path: Path, *args: object, token: str | None = TOKEN, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.token = token
        command = [sys.executable, "-m", "transferkit.cli.main", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), *map(str, args)]
        extra = {"TRANSFERKIT_TOKEN": token} if token else {}
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=env or cli_env(**extra), cwd=log_path.parent)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60.0, **kwargs)

    def async_client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=60.0, **kwargs)

    def wait_ready(self, timeout: float = 120.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def start_server(log_path: Path, *args: object, token: str | None = TOKEN) -> Server:
    return Server(log_path, *args, token=token).wait_ready()


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict:
    """The response has `status` and the service's JSON error body with `code`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error
