"""Image models over HTTP: base64 images in, the same predictions as the Python API out, and a
400 naming the input for anything that is not a decodable image."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from serving import Server, assert_json_error, image_artifact, start_server

MAX_PIXELS = 300 * 300


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_artifact(tmp_path_factory)


@pytest.fixture(scope="module")
def server(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("image-server") / "server.log"
    running = start_server(log, "--model", artifact, "--max-image-pixels", MAX_PIXELS, token=None)
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def encoded(pixels: np.ndarray, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def noise(size: tuple[int, ...], base: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(base + rng.normal(0, 20, size), 0, 255).astype(np.uint8)


def test_images_are_predicted_as_the_python_api_predicts_their_files(client: httpx.Client, artifact: Path,
                                                                     tmp_path: Path) -> None:
    import transferkit

    # Sizes other than the model's 32 px, and a grey image: the service resizes and converts them.
    images = [noise((48, 40, 3), 200, 0), noise((20, 20, 3), 40, 1), noise((64, 64), 120, 2)]
    files = []
    for i, pixels in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(files[-1])
    response = client.post("/predict", json={"inputs": [encoded(p) for p in images]})
    assert response.status_code == 200, response.text
    expected = transferkit.load(artifact).predict([str(f) for f in files])
    for got, want in zip(response.json()["predictions"], expected):
        assert got["label"] == want["label"] and got["truncated"] is False
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_jpeg_is_accepted(client: httpx.Client) -> None:
    response = client.post("/predict", json={"inputs": [encoded(noise((32, 32, 3), 200, 3), "JPEG")]})
    assert response.status_code == 200 and response.json()["predictions"][0]["label"] in {"bright", "dark"}


def _truncated_png() -> str:
    raw = base64.b64decode(encoded(noise((32, 32, 3), 200, 4)))
    return base64.b64encode(raw[: len(raw) // 2]).decode("ascii")


UNDECODABLE = [
    ("not-base64", "this is not base64!", "not valid base64"),
    ("base64-of-text", base64.b64encode(b"just some text, not an image").decode(), "not a readable image"),
    ("truncated-png", _truncated_png(), "not a readable image"),
    ("too-many-pixels", encoded(np.zeros((400, 400, 3), dtype=np.uint8)), "400x400 pixels"),
]


@pytest.mark.parametrize("bad,reason", [case[1:] for case in UNDECODABLE], ids=[case[0] for case in UNDECODABLE])
def test_undecodable_images_are_a_400_naming_the_input(server: Server, client: httpx.Client, bad: str,
                                                       reason: str) -> None:
    good = encoded(noise((32, 32, 3), 200, 5))
    error = assert_json_error(client.post("/predict", json={"inputs": [good, good, bad]}), 400, "invalid_image")
    assert "inputs[2]" in error["message"] and reason in error["message"]
    assert server.alive() and client.post("/predict", json={"inputs": [good]}).status_code == 200
