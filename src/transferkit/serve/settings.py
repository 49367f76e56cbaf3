"""The service's limits and switches, with the defaults the CLI shows."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ..errors import ConfigError

TOKEN_ENV = "TRANSFERKIT_TOKEN"


@dataclass(frozen=True)
class Settings:
    """How the service answers: limits per request, micro-batching, authentication."""

    max_body_bytes: int = 4 * 1024 * 1024  # whole request body, checked before any parsing
    max_items: int = 64  # inputs per request
    max_image_pixels: int = 4096 * 4096  # per decoded image (width × height), before resizing
    max_batch: int = 32  # items per model call when micro-batching
    batch_window_ms: float = 5.0  # how long the first request of a batch waits for company
    batching: bool = True  # False: one model call per request (the benchmark's baseline)
    token: str | None = None  # bearer token every endpoint except /health requires
    reload_on_sighup: bool = False  # install a SIGHUP handler (the CLI does; in-process tests do not)

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_items", "max_image_pixels", "max_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.batch_window_ms < 0:
            raise ConfigError(f"batch_window_ms must not be negative, not {self.batch_window_ms}")


def token_from(flag: str | None) -> str | None:
    """The bearer token: --token, else $TRANSFERKIT_TOKEN; an empty value means none."""
    token = flag if flag is not None else os.environ.get(TOKEN_ENV)
    return token or None


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
