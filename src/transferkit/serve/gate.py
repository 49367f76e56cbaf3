"""The gate every HTTP request passes before routing: token, body size, content type.

A pure ASGI middleware, so nothing is parsed before these checks and the body is never read
past the limit: a Content-Length over the limit is refused at once; a body without one (chunked)
is read only until it passes the limit. The accepted body is buffered (at most the limit) and
replayed to the application.
"""

from __future__ import annotations

import hmac

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

OPEN_PATHS = frozenset({"/health"})


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class RequestGate:
    """401 without the right bearer token (except /health), 413 over the body limit, 415 for a
    body that is not JSON."""

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal, body = await self._check(scope, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _check(self, scope: Scope, receive: Receive) -> tuple[JSONResponse | None, bytes]:
        """(the refusal, or None, and the body read so far), checking the cheapest things first."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refuse_auth(scope["path"], headers)
        if refusal is None:
            refusal = self._refuse_length(headers)
        if refusal is not None:
            return refusal, b""
        try:
            body = await self._read_body(receive)
        except BodyTooLarge:
            return self._too_large(), b""
        if body and not _is_json(headers.get("content-type", "")):
            return error_response(415, "unsupported_media_type", "send the body as application/json"), body
        return None, body

    def _refuse_auth(self, path: str, headers: dict[str, str]) -> JSONResponse | None:
        if self.token is None or path in OPEN_PATHS:
            return None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            message = "this endpoint needs an 'Authorization: Bearer <token>' header"
        elif not hmac.compare_digest(credentials.strip().encode("utf-8"), self.token):
            message = "wrong bearer token"
        else:
            return None
        return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})

    def _refuse_length(self, headers: dict[str, str]) -> JSONResponse | None:
        declared = headers.get("content-length")
        if declared is None:
            return None
        if not declared.strip().isdigit():
            return error_response(400, "bad_content_length", "Content-Length is not a number")
        return self._too_large() if int(declared) > self.max_body_bytes else None

    def _too_large(self) -> JSONResponse:
        return error_response(413, "body_too_large", f"the request body is over {self.max_body_bytes} bytes; "
                                                      "send fewer or smaller inputs per request")

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the buffered body to the app once, then waits on the real one."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
