"""A lean ASGI app for the OpenAI-compatible endpoints (`/v1/...`), in front of Django.

The hot path skips Django's request/middleware machinery: it reads the body, runs the
synchronous steps (authentication, prompt, routing; pricing and recording) in one shared
thread pool, and talks to providers on the event loop. Everything else goes to Django.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
from django.conf import settings

from core.db import work_cycle
from core.errors import ApplicationError, PayloadTooLarge
from core.ids import parse_whole_number, uuid7
from core.logging import request_id_var
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway import upstream
from gateway.pipeline import (
    Finished,
    Plan,
    Refused,
    Result,
    Usage,
    finish,
    prepare,
    record_refused,
    release_unsettled,
)
from observability.types import CallStatus
from prompts.context import dropped_document_counts

logger = logging.getLogger("gateway")


def cost_text(cost: Any) -> str:
    """A call's cost in USD in fixed notation to the 1e-8 of Call.cost_usd: "0.00000000", never "0E-8"."""
    return f"{Decimal(str(cost)):.8f}"


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor  # one pool per process, made on first use
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.GATEWAY_THREADS, thread_name_prefix="gateway"
        )
    return _executor


def _in_request_cycle(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    with work_cycle():
        return function(**kwargs)


def _model_names(*, authorization: str) -> list[str]:
    """GET /v1/models in one step: the key's team's enabled models."""
    from gateway.catalog import visible_model_names
    from gateway.keys import authenticate

    return visible_model_names(team_id=authenticate(authorization).team_id)


async def run_sync(function: Callable[..., Any], **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_pool(), partial(_in_request_cycle, function, kwargs))


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
        supplied = self.headers.get("x-request-id", "")
        self.request_id = supplied if _CLIENT_REQUEST_ID.match(supplied) else uuid.uuid4().hex
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
            await self.respond_error(error.status_code, error.message, error.error_type, error.code, error.param)
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

    async def models(self) -> None:
        names = await run_sync(_model_names, authorization=self.headers.get("authorization", ""))
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "controlplane"} for name in names]
        await self.respond(200, orjson.dumps({"object": "list", "data": data}))

    async def chat_completions(self) -> None:
        body = await self.read_body()
        call_id = str(uuid7())
        try:
            plan = await run_sync(
                prepare,
                call_id=call_id,
                started=self.started,
                authorization=self.headers.get("authorization", ""),
                body=body,
            )
        except Refused as refused:
            await run_sync(record_refused, refused=refused)  # a spool write (maybe an fsync): off the loop
            error = refused.error
            headers = {"x-controlplane-call-id": call_id}
            retry_after = getattr(error, "retry_after", None)  # a budget that resets or settles
            if retry_after is not None:
                headers["retry-after"] = str(retry_after)
            await self.respond_error(
                error.status_code, error.message, error.error_type, error.code, error.param, headers
            )
            return
        try:
            if plan.cache_hit is not None:
                await self.serve_from_cache(plan)
            elif plan.request.stream and not plan.buffer_stream:
                await self.stream(plan)
            else:
                await self.complete(plan)
        except BaseException:
            await self.release_unsettled(plan)
            raise

    async def release_unsettled(self, plan: Plan) -> None:
        """After an exception: give back the call's budget reservation unless its settlement
        was handed to the recorder. Shielded: a cancelled request still releases."""
        if plan.reservation is None or not plan.reservation.is_open:
            return
        try:
            await asyncio.shield(run_sync(release_unsettled, plan=plan))
        except Exception:
            logger.exception("releasing a budget reservation failed; the periodic reclaim will release it")

    def _headers(self, plan: Plan, result: Result, finished: Finished | None) -> dict[str, str]:
        record = finished.record if finished is not None else None
        served = result.served
        route = (
            f"{served.name} ({plan.route_reason}"
            + (", fallback" if served and plan.chain[0].id != served.id else "")
            + ")"
            if served
            else ""
        )
        lookup = plan.cache_lookup
        cache = "none" if lookup is None or lookup.mode == "off" else ("miss" if lookup.hit is None else lookup.mode)
        headers = {
            "x-controlplane-call-id": plan.call_id,
            "x-controlplane-route": route,
            "x-controlplane-cache": {"on": "hit", "shadow": "shadow_hit"}.get(cache, cache),
        }
        if plan.request.documents:
            # The caller sent documents: say how many never reached the model (details on the call record).
            dropped, above_clearance = dropped_document_counts(plan.context_report)
            headers["x-controlplane-documents-dropped"] = str(dropped)
            headers["x-controlplane-documents-dropped-above-clearance"] = str(above_clearance)
        if record is not None:
            headers["x-controlplane-overhead-ms"] = f"{record['gateway_overhead_ms']:.2f}"
            headers["x-controlplane-cost-usd"] = cost_text(record["cost_usd"])
        return headers

    async def call_upstream(self, plan: Plan, *, stream: bool) -> upstream.Outcome | None:
        """The provider's answer; or, when every attempt failed, the failure answered and recorded."""
        started = time.perf_counter()
        try:
            return await upstream.call(
                chain=plan.chain,
                breaker_states=plan.breaker_states,
                messages=plan.messages,
                params=plan.params,
                stream=stream,
                run_sync=run_sync,
            )
        except upstream.UpstreamError as failure:
            result = Result(
                served=None,
                status=CallStatus.ERROR,
                http_status=failure.status,
                attempts=[attempt.as_dict() for attempt in failure.attempts],
                retries=max(0, len(failure.attempts) - 1),
                error_type=failure.error_type,
                error_message=failure.message,
                upstream_ms=(time.perf_counter() - started) * 1000,
            )
            finished = await run_sync(finish, plan=plan, result=result)
            headers = self._headers(plan, result, finished)
            await self.respond_error(failure.status, failure.message, failure.error_type, failure.code, extra=headers)
            return None

    async def send_completion(
        self, plan: Plan, completion: dict[str, Any], body: bytes, headers: dict[str, str]
    ) -> None:
        """A whole answer: as JSON, or replayed as SSE chunks to a streaming client."""
        if not plan.request.stream:
            await self.respond(200, body, headers)
            return
        await self.start(200, b"text/event-stream; charset=utf-8", {**headers, "cache-control": "no-cache"})
        for line in completion_as_stream(completion, plan.request.include_usage):
            await self.send({"type": "http.response.body", "body": line, "more_body": True})
        await self.send({"type": "http.response.body", "body": b""})

    async def complete(self, plan: Plan) -> None:
        upstream_started = time.perf_counter()
        # The client may leave while the provider works: then stop waiting for the provider
        # (its connection is closed), and record the call as cancelled, settling its reservation.
        call = asyncio.ensure_future(self.call_upstream(plan, stream=False))
        watcher = asyncio.ensure_future(self._watch_disconnect())
        try:
            await asyncio.wait({call, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (call, watcher) if not call.done() else (watcher,):
                task.cancel()
        if not call.done() or call.cancelled():
            with contextlib.suppress(asyncio.CancelledError):
                await call
            result = Result(
                served=None,
                status=CallStatus.CANCELLED,
                http_status=499,
                error_type="client_disconnected",
                error_message="The client disconnected before the answer arrived.",
                upstream_ms=(time.perf_counter() - upstream_started) * 1000,
            )
            await run_sync(finish, plan=plan, result=result)
            return
        outcome = call.result()
        if outcome is None:
            return
        upstream_ms = (time.perf_counter() - upstream_started) * 1000
        try:
            payload = orjson.loads(outcome.body)
        except orjson.JSONDecodeError:
            payload = {}
        choice = (payload.get("choices") or [{}])[0] if isinstance(payload, dict) else {}
        message = choice.get("message") or {}
        result = Result(
            served=outcome.served,
            status=CallStatus.SUCCESS,
            http_status=200,
            text=message.get("content") or "",
            finish_reason=choice.get("finish_reason") or "",
            response_id=str(payload.get("id") or ""),
            usage=Usage.from_openai(payload.get("usage")),
            attempts=[attempt.as_dict() for attempt in outcome.attempts],
            retries=outcome.retries,
            upstream_ms=upstream_ms,
        )
        original_text = result.text
        finished = await run_sync(finish, plan=plan, result=result)
        headers = self._headers(plan, result, finished)
        if finished.blocked is not None:
            error = finished.blocked
            await self.respond_error(
                error.status_code, error.message, error.error_type, error.code, error.param, headers
            )
            return
        body = outcome.body
        if finished.text != original_text and isinstance(payload, dict):
            message["content"] = finished.text  # redacted or restored by the output checks
            body = orjson.dumps(payload)
        # A stream the output checks had to see whole is replayed as a stream.
        await self.send_completion(plan, payload if isinstance(payload, dict) else {}, body, headers)

    async def serve_from_cache(self, plan: Plan) -> None:
        hit = plan.cache_hit
        assert hit is not None
        completion = hit.completion
        choice = (completion.get("choices") or [{}])[0]
        result = Result(
            served=plan.chain[0],
            status=CallStatus.SUCCESS,
            http_status=200,
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            response_id=str(completion.get("id") or ""),
            usage=Usage.from_openai(completion.get("usage")),
            from_cache=True,
        )
        finished = await run_sync(finish, plan=plan, result=result)
        headers = self._headers(plan, result, finished)
        if finished.blocked is not None:
            error = finished.blocked
            await self.respond_error(
                error.status_code, error.message, error.error_type, error.code, error.param, headers
            )
            return
        await self.send_completion(plan, completion, orjson.dumps(completion), headers)

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return

    async def stream(self, plan: Plan) -> None:
        upstream_started = time.perf_counter()
        outcome = await self.call_upstream(plan, stream=True)
        if outcome is None:
            return
        result = Result(
            served=outcome.served,
            status=CallStatus.SUCCESS,
            http_status=200,
            attempts=[attempt.as_dict() for attempt in outcome.attempts],
            retries=outcome.retries,
        )
        await self.start(
            200, b"text/event-stream; charset=utf-8", {**self._headers(plan, result, None), "cache-control": "no-cache"}
        )
        watcher = asyncio.create_task(self._watch_disconnect())
        relay = asyncio.create_task(self._relay(plan, outcome, result, upstream_started))
        done, _ = await asyncio.wait({watcher, relay}, return_when=asyncio.FIRST_COMPLETED)
        if relay not in done and not result.completed:  # the client went away: stop reading from the provider
            relay.cancel()
            result.status = CallStatus.CANCELLED
            result.http_status = 499
            result.error_type = "client_disconnected"
            result.error_message = "The client disconnected before the stream ended."
        else:
            watcher.cancel()
        try:
            await relay
        except asyncio.CancelledError:
            pass
        except Exception as error:  # noqa: BLE001 - a provider failing mid-stream ends the stream, recorded
            result.status = CallStatus.ERROR
            result.error_type = type(error).__name__
            result.error_message = str(error)
        finally:
            await outcome.close()
        if result.upstream_ms == 0.0:
            result.upstream_ms = (time.perf_counter() - upstream_started) * 1000
        record = (await run_sync(finish, plan=plan, result=result)).record
        if result.status == CallStatus.SUCCESS:
            trailer = (
                f": x-controlplane-cost-usd={cost_text(record['cost_usd'])} "
                f"x-controlplane-overhead-ms={record['gateway_overhead_ms']:.2f}\n\n"
            )
            await self.send({"type": "http.response.body", "body": trailer.encode(), "more_body": True})
        if not self.disconnected.is_set():
            await self.send({"type": "http.response.body", "body": b""})

    async def _relay(self, plan: Plan, outcome: upstream.Outcome, result: Result, upstream_started: float) -> None:
        text_parts: list[str] = []
        assert outcome.stream is not None
        try:
            async for line in outcome.stream:
                chunk = upstream.parse_stream_line(line)
                if chunk is not None:
                    choices = chunk.get("choices") or []
                    if chunk.get("usage"):
                        result.usage = Usage.from_openai(chunk["usage"])
                    if chunk.get("id") and not result.response_id:
                        result.response_id = str(chunk["id"])
                    if choices:
                        delta = choices[0].get("delta") or {}
                        if delta.get("content"):
                            if result.time_to_first_token_ms is None:
                                result.time_to_first_token_ms = round((time.perf_counter() - self.started) * 1000, 3)
                            text_parts.append(delta["content"])
                        if choices[0].get("finish_reason"):
                            result.finish_reason = choices[0]["finish_reason"]
                    elif not plan.request.include_usage:
                        continue  # the usage-only chunk the client did not ask for
                is_end = line.strip() == "data: [DONE]"
                if is_end:
                    # The answer is whole: a client closing from now on is not a disconnect mid-stream.
                    result.completed = True
                await self.send({"type": "http.response.body", "body": (line + "\n").encode(), "more_body": True})
                if is_end:
                    await upstream.drain(outcome.stream)  # read to the end: the connection goes back to the pool
                    break
        finally:
            result.text = "".join(text_parts)
            result.upstream_ms = (time.perf_counter() - upstream_started) * 1000


def completion_as_stream(completion: dict[str, Any], include_usage: bool) -> list[bytes]:
    """A whole chat completion as the SSE chunks a streaming client expects."""
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": message.get("content") or ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}]},
    ]
    if include_usage and completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]
