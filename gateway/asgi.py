"""A lean ASGI app for the OpenAI-compatible endpoints (`/v1/...`), in front of Django.

The hot path skips Django's request/middleware machinery: this module speaks ASGI (the
request id, metrics, the body and its limit, the OpenAI error shape) and hands a chat
completion to gateway.pipeline, which runs its steps. Everything else goes to Django.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from django.conf import settings

from core.errors import ApplicationError, PayloadTooLarge
from core.ids import parse_whole_number
from core.logging import request_id_from, request_id_var
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway import pipeline
from gateway.catalog import visible_model_names
from gateway.executor import run_sync
from gateway.keys import authenticate

logger = logging.getLogger("gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _model_names(*, authorization: str) -> list[str]:
    """GET /v1/models in one step: the key's team's enabled models."""
    return visible_model_names(team_id=authenticate(authorization).team_id)


def error_payload(status: int, message: str, error_type: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})


class GatewayApp:
    def __init__(self, django_app: Callable[..., Awaitable[None]]) -> None:
        self.django_app = django_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await Exchange(scope, receive, send).handle()
        else:
            await self.django_app(scope, receive, send)


class Exchange:
    """One request to /v1/..."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.started = time.perf_counter()
        self.headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.request_id = request_id_from(self.headers.get("x-request-id"))
        self.status = 500
        self.route = "unmatched"
        self.is_started = False  # the response's status line went out: no error answer can follow
        self.disconnected = asyncio.Event()

    async def handle(self) -> None:
        token = request_id_var.set(self.request_id)
        try:
            await self._dispatch()
        finally:
            elapsed = time.perf_counter() - self.started
            HTTP_REQUESTS.labels(route=self.route, method=self.scope["method"], status=str(self.status)).inc()
            HTTP_LATENCY.labels(route=self.route, method=self.scope["method"]).observe(elapsed)
            request_id_var.reset(token)

    async def _dispatch(self) -> None:
        path, method = self.scope["path"].rstrip("/"), self.scope["method"]
        routes: dict[str, tuple[str, Callable[[], Awaitable[None]]]] = {
            "/v1/chat/completions": ("POST", self.chat_completions),
            "/v1/models": ("GET", self.models),
        }
        if path not in routes:
            await self.respond_error(
                404,
                f"Unknown path {path}; this gateway serves /v1/chat/completions and /v1/models.",
                "invalid_request_error",
                "not_found",
            )
            return
        expected, handler = routes[path]
        self.route = path.lstrip("/")
        if method != expected:
            await self.respond_error(
                405, f"{path} accepts {expected} only.", "invalid_request_error", "method_not_allowed"
            )
            return
        try:
            await handler()
        except ApplicationError as error:
            await self.respond_application_error(error)
        except Exception:
            # Whatever failed, a client of /v1 gets the API's error shape, never the server's text page.
            logger.exception("unexpected error in %s", path)
            if self.is_started:
                raise  # mid-response: the server closes the connection, so the client sees it cut off
            await self.respond_error(500, "Internal server error; it has been logged.", "api_error", "server_error")

    # Responses ----------------------------------------------------------------------

    async def start(self, status: int, content_type: bytes, extra: dict[str, str] | None = None) -> None:
        self.status = status
        self.is_started = True
        headers = [(b"content-type", content_type), (b"x-request-id", self.request_id.encode())]
        for name, value in (extra or {}).items():
            headers.append((name.encode(), value.encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def respond(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        await self.start(status, b"application/json", extra)
        await self.send({"type": "http.response.body", "body": body})

    async def respond_error(
        self,
        status: int,
        message: str,
        error_type: str,
        code: str | None,
        param: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        await self.respond(status, error_payload(status, message, error_type, code, param), extra)

    async def respond_application_error(self, error: ApplicationError, extra: dict[str, str] | None = None) -> None:
        await self.respond_error(error.status_code, error.message, error.error_type, error.code, error.param, extra)

    # Request body -------------------------------------------------------------------

    async def read_body(self) -> bytes:
        limit = settings.GATEWAY_MAX_BODY_BYTES
        declared = parse_whole_number(self.headers.get("content-length", ""))
        if declared is not None and declared > limit:
            raise PayloadTooLarge(
                f"The request body is {declared} bytes; the limit is {limit}. Send fewer or shorter messages."
            )
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"The request body is over the limit of {limit} bytes. Send fewer or shorter messages."
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    # Handlers -----------------------------------------------------------------------

    async def chat_completions(self) -> None:
        await pipeline.chat_completions(self)

    async def models(self) -> None:
        names = await run_sync(_model_names, authorization=self.headers.get("authorization", ""))
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "controlplane"} for name in names]
        await self.respond(200, orjson.dumps({"object": "list", "data": data}))

    async def watch_disconnect(self) -> None:
        """Returns when the client disconnects (read while the answer is being made)."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return
