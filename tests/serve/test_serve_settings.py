"""Service settings: where the token comes from, what counts as loopback, invalid limits."""

from __future__ import annotations

import pytest

from transferkit.errors import ConfigError
from transferkit.serve.settings import Settings, is_loopback, token_from


def test_the_token_comes_from_the_flag_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRANSFERKIT_TOKEN", raising=False)
    assert token_from(None) is None
    monkeypatch.setenv("TRANSFERKIT_TOKEN", "from-env")
    assert token_from(None) == "from-env"
    assert token_from("from-flag") == "from-flag"
    monkeypatch.setenv("TRANSFERKIT_TOKEN", "")
    assert token_from(None) is None


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False),
                                           ("192.168.1.4", False), ("example.com", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("field", ["max_body_bytes", "max_items", "max_image_pixels", "max_batch"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Settings(**{field: 0})
    with pytest.raises(ConfigError, match="batch_window_ms"):
        Settings(batch_window_ms=-1)
