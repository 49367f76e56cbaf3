"""The service over real HTTP: every endpoint, the token, and every kind of bad input.

One `transferkit serve --model DIR` subprocess (tiny-bert, max_length 16, a token, small limits)
answers all tests of this module; each bad request must get its 4xx and a JSON error, and the
server must stay up and log no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving import TOKEN, Server, assert_json_error, start_server, text_artifact

MAX_BODY = 20_000
MAX_ITEMS = 8


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_artifact(tmp_path_factory)


@pytest.fixture(scope="module")
def server(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("api-server") / "server.log"
    running = start_server(log, "--model", artifact, "--max-body-bytes", MAX_BODY, "--max-items", MAX_ITEMS)
    yield running
    running.stop()
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def test_health_is_open(server: Server) -> None:
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_model_describes_the_artifact(client: httpx.Client, artifact: Path) -> None:
    info = client.get("/model").json()
    meta = json.loads((artifact / "transferkit.json").read_text())
    assert info["version"] is None and info["registry"] is None and info["source"] == "directory"
    assert info["task"] == "classification" and info["modality"] == "text"
    assert info["label_names"] == ["neg", "pos"] and info["max_length"] == 16
    assert info["metadata"] == meta and info["metadata"]["metrics"]["after"]["accuracy"] >= 0
    assert info["limits"]["max_body_bytes"] == MAX_BODY and info["limits"]["max_items"] == MAX_ITEMS
    assert set(info["stats"]) == {"requests", "items", "batches", "largest_batch"}


def test_predict_matches_the_python_api(client: httpx.Client, artifact: Path) -> None:
    import transferkit

    texts = ["great fun", "dull plot", "actors"]  # at most 14 characters: 16 tokens
    response = client.post("/predict", json={"inputs": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["version"] is None and len(body["predictions"]) == 3
    expected = transferkit.load(artifact).predict(texts)
    for got, want in zip(body["predictions"], expected):
        assert got["label"] == want["label"] and got["truncated"] is False
        assert np.allclose([got["probabilities"][k] for k in ("neg", "pos")],
                           [want["probabilities"][k] for k in ("neg", "pos")], atol=1e-5)


def test_long_texts_are_truncated_and_say_so(client: httpx.Client) -> None:
    # tiny-bert's vocabulary is characters: 'abcdefghij' alone is more than 16 tokens.
    predictions = client.post("/predict", json={"inputs": ["fun", "abcdefghij " * 20]}).json()["predictions"]
    assert [p["truncated"] for p in predictions] == [False, True]


def test_openapi_and_docs_document_the_api_behind_the_token(server: Server, client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/model", "/health", "/admin/reload"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["inputs"]["type"] == "array" and request["additionalProperties"] is False
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/health"]["get"]["security"] == []
    assert {"400", "401", "413", "415", "422"} <= set(schema["paths"]["/predict"]["post"]["responses"])
    assert "swagger" in client.get("/docs").text.lower()
    for path in ("/openapi.json", "/docs"):
        assert_json_error(httpx.get(f"{server.url}{path}"), 401, "unauthorized")


@pytest.mark.parametrize("method,path", [("GET", "/model"), ("POST", "/predict"), ("POST", "/admin/reload"),
                                         ("GET", "/no-such-page")])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer",
                                           f"Bearer {TOKEN}x"])
def test_every_endpoint_but_health_needs_the_token(server: Server, method: str, path: str,
                                                   authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(method, f"{server.url}{path}", json={"inputs": ["fun"]}, headers=headers)
    assert_json_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


BAD_BODIES = [
    # (id, raw body, content type, status, code)
    ("malformed-json", b'{"inputs": ["fun",', "application/json", 400, "invalid_json"),
    ("not-utf8", b'{"inputs": ["\xff\xfe"]}', "application/json", 400, "invalid_json"),
    ("empty-body", b"", "application/json", 422, "invalid_request"),
    ("array-not-object", b'["fun"]', "application/json", 422, "invalid_request"),
    ("inputs-not-a-list", b'{"inputs": "fun"}', "application/json", 422, "invalid_request"),
    ("numbers", b'{"inputs": [1, 2]}', "application/json", 422, "invalid_request"),
    ("nested", b'{"inputs": [["fun"]]}', "application/json", 422, "invalid_request"),
    ("null-input", b'{"inputs": [null]}', "application/json", 422, "invalid_request"),
    ("no-inputs", b"{}", "application/json", 422, "invalid_request"),
    ("empty-list", b'{"inputs": []}', "application/json", 422, "invalid_request"),
    ("empty-string", b'{"inputs": ["fun", ""]}', "application/json", 422, "invalid_request"),
    ("whitespace", b'{"inputs": ["   \\n"]}', "application/json", 422, "invalid_request"),
    ("unknown-field", b'{"inputs": ["fun"], "path": "/etc"}', "application/json", 422, "invalid_request"),
    ("model-not-string", b'{"inputs": ["fun"], "model": 3}', "application/json", 422, "invalid_request"),
    ("model-path", b'{"inputs": ["fun"], "model": "../../etc/passwd"}', "application/json", 400, "invalid_model"),
    ("model-abs-path", b'{"inputs": ["fun"], "model": "/tmp/model"}', "application/json", 400, "invalid_model"),
    ("model-zoo-name", b'{"inputs": ["fun"], "model": "minilm-l6"}', "application/json", 400, "invalid_model"),
    ("model-dir-prefix", b'{"inputs": ["fun"], "model": "dir:/tmp"}', "application/json", 400, "invalid_model"),
    ("model-v0", b'{"inputs": ["fun"], "model": "v0"}', "application/json", 400, "invalid_model"),
    ("model-not-served", b'{"inputs": ["fun"], "model": "v1"}', "application/json", 409, "version_not_served"),
    ("too-many-items", json.dumps({"inputs": ["fun"] * (MAX_ITEMS + 1)}).encode(), "application/json", 413,
     "too_many_inputs"),
    ("oversize", json.dumps({"inputs": ["x" * MAX_BODY]}).encode(), "application/json", 413, "body_too_large"),
    ("text-plain", b'{"inputs": ["fun"]}', "text/plain", 415, "unsupported_media_type"),
    ("form", b"inputs=fun", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("body,content_type,status,code", [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_bad_requests_get_a_json_4xx(server: Server, client: httpx.Client, body: bytes, content_type: str,
                                     status: int, code: str) -> None:
    response = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert_json_error(response, status, code)
    assert server.alive() and client.get("/model").status_code == 200


def test_validation_errors_say_where(client: httpx.Client) -> None:
    error = assert_json_error(client.post("/predict", json={"inputs": ["fun", 7]}), 422, "invalid_request")
    assert error["details"][0]["loc"] == ["body", "inputs", "1"]
    error = assert_json_error(client.post("/predict", json={"inputs": ["fun", "", "ok", " "]}), 422, "invalid_request")
    assert "[1, 3]" in error["details"][0]["message"]


def test_an_oversize_body_without_content_length_is_cut_off(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # a generator body goes out chunked, with no Content-Length
        yield b'{"inputs": ["'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"]}'

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert_json_error(response, 413, "body_too_large")


def test_a_body_just_under_the_limit_is_accepted(client: httpx.Client) -> None:
    body = json.dumps({"inputs": ["fun " * 10] * MAX_ITEMS}).encode()
    assert len(body) < MAX_BODY
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and len(response.json()["predictions"]) == MAX_ITEMS


def test_unknown_routes_and_methods_are_json_errors(client: httpx.Client) -> None:
    assert_json_error(client.get("/nothing/here"), 404, "not_found")
    assert_json_error(client.get("/predict"), 405, "method_not_allowed")


def test_reload_of_a_directory_rereads_it(client: httpx.Client) -> None:
    assert client.post("/admin/reload").json() == {"reloaded": True, "version": None, "previous": None}
    assert client.post("/predict", json={"inputs": ["fun"]}).status_code == 200
