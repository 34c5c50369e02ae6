"""Calls to providers through the official `openai` SDK: one async client per provider
(sharing one connection pool per event loop), explicit timeouts, retries with exponential
backoff and full jitter honouring Retry-After, bounded in count and total time, the
fallback chain, and the circuit breaker.

The SDK's own retries are off (max_retries=0): this module decides, so that it can fall
back and record every attempt.

A provider's 5xx reaches the client as 502 (a bad gateway: the provider failed, not this
server), in the OpenAI error shape, naming the provider and its status.

The breaker's bookkeeping waits on the shared cache, so it runs in the gateway's thread pool
(`run_sync`), never on the event loop: a slow or failing shared cache or a failing provider
must not stall the other requests of the process. A closed breaker and a success on a closed
breaker need no bookkeeping, so the happy path makes no thread hop for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import orjson
from django.conf import settings
from openai._constants import RAW_RESPONSE_HEADER  # the SDK's switch for an unread (streamed) response

from core import egress
from gateway import breaker
from gateway.catalog import ProviderConfig, ServedModel

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
# The provider refused our configuration (key, model id): another model may still work.
FALLBACK_STATUS = {401, 403, 404}


@dataclass
class Attempt:
    model: str
    provider: str
    status: int | None
    error: str
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "status": self.status,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 2),
        }


@dataclass
class UpstreamError(Exception):
    """Every attempt failed, or the provider refused the request itself (a 400)."""

    status: int
    message: str
    error_type: str
    code: str | None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class Outcome:
    served: ServedModel
    attempts: list[Attempt]
    retries: int
    body: bytes = b""  # non-streaming: the provider's JSON body
    stream: AsyncIterator[str] | None = None  # streaming: SSE lines
    close: Any = None  # streaming: coroutine function that releases the upstream response


_clients: dict[tuple[Any, ...], openai.AsyncOpenAI] = {}
_pools: dict[int, httpx2.AsyncClient] = {}


def _pool() -> httpx2.AsyncClient:
    loop_id = id(asyncio.get_running_loop())
    pool = _pools.get(loop_id)
    if pool is None:
        # Every new connection passes the egress policy (resolved, checked, pinned); a pooled
        # one is reused without a check, so the policy costs nothing per request. No redirects.
        pool = egress.egress_async_client(
            limits=httpx2.Limits(max_connections=settings.GATEWAY_MAX_CONNECTIONS, max_keepalive_connections=100),
        )
        _pools[loop_id] = pool
    return pool


def client_for(provider: ProviderConfig) -> openai.AsyncOpenAI:
    key = (id(asyncio.get_running_loop()), provider.id, provider.base_url, provider.api_key)
    client = _clients.get(key)
    if client is None:
        client = openai.AsyncOpenAI(
            base_url=provider.base_url,
            api_key=provider.api_key or "no-key",
            max_retries=0,
            timeout=httpx2.Timeout(provider.read_timeout_seconds, connect=provider.connect_timeout_seconds),
            http_client=_pool(),
        )
        _clients[key] = client
    return client


def _backoff(retry_index: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.GATEWAY_RETRY_AFTER_CAP_SECONDS)
    ceiling = min(settings.GATEWAY_BACKOFF_CAP_SECONDS, settings.GATEWAY_BACKOFF_BASE_SECONDS * (2**retry_index))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(error: openai.APIStatusError) -> tuple[str, str, str | None]:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return (
                str(inner.get("message") or error.message),
                str(inner.get("type") or "api_error"),
                inner.get("code") if isinstance(inner.get("code"), str) else None,
            )
    return error.message, "api_error", None


_JSON_HEADERS = {"Content-Type": "application/json"}
# For a stream, ask the SDK for the raw HTTP response unread: the body passes through as it comes.
_STREAM_HEADERS = {**_JSON_HEADERS, RAW_RESPONSE_HEADER: "stream"}


def _request_body(served: ServedModel, messages: list[dict[str, Any]], params: dict[str, Any], stream: bool) -> bytes:
    body = {**params, "model": served.provider_model, "messages": messages}
    if stream:
        body["stream"] = True
        # Always ask for usage, so that streamed calls are recorded and priced.
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


async def _post(client: openai.AsyncOpenAI, body: bytes, *, stream: bool) -> httpx2.Response:
    """POST /chat/completions through the SDK (its auth, timeouts, error mapping and
    connection pool) with the body already serialised: `chat.completions.create()` would
    validate and transform every message first, about a sixth of the gateway's event-loop
    time per call (measured with py-spy), for a body the gateway has checked already."""
    return await client.post(
        "/chat/completions",
        cast_to=httpx2.Response,
        content=body,
        options={"headers": _STREAM_HEADERS if stream else _JSON_HEADERS},
    )


RunSync = Callable[..., Awaitable[Any]]


async def _allowed(provider_id: int, open_until: float | None, run_sync: RunSync) -> bool:
    """Whether the breaker lets a call through: decided here when it is closed or open, in the
    thread pool when it is half-open (its one probe is claimed in the shared cache)."""
    if open_until is None:
        return True
    if time.time() < open_until:
        return False
    return bool(await run_sync(breaker.claim_probe, provider_id=provider_id))


def _status_error(provider_name: str, error: openai.APIStatusError) -> UpstreamError:
    """The provider's error for the client: its 4xx as it is, its 5xx as a 502."""
    message, error_type, code = _error_message(error)
    if 300 <= error.status_code < 400:
        return UpstreamError(
            502,
            f"Provider '{provider_name}' answered with a redirect (HTTP {error.status_code}), "
            "which is not followed; fix its base_url.",
            "api_error",
            "upstream_redirect",
        )
    if error.status_code < 500:
        return UpstreamError(error.status_code, message, error_type, code)
    return UpstreamError(
        502,
        f"Provider '{provider_name}' failed with HTTP {error.status_code}: {message}",
        "api_error",
        "upstream_error",
    )


async def call(
    *,
    chain: Sequence[ServedModel],
    breaker_states: dict[int, float | None],
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    stream: bool,
    run_sync: RunSync,
) -> Outcome:
    attempts: list[Attempt] = []
    retries = 0
    last_error: UpstreamError | None = None
    deadline = time.monotonic() + settings.GATEWAY_TOTAL_TIMEOUT_SECONDS
    for served in chain:
        provider = served.provider
        open_until = breaker_states.get(provider.id)
        if not await _allowed(provider.id, open_until, run_sync):
            attempts.append(Attempt(served.name, provider.name, None, "circuit open", 0.0))
            last_error = UpstreamError(
                503, f"Provider '{provider.name}' is failing; its circuit is open.", "api_error", "circuit_open"
            )
            continue
        client = client_for(provider)
        model_started = time.monotonic()
        body = _request_body(served, messages, params, stream)
        for retry_index in range(provider.max_retries + 1):
            started = time.monotonic()
            try:
                response = await _post(client, body, stream=stream)
                if open_until is not None:
                    await run_sync(breaker.record_success, provider_id=provider.id)
                attempts.append(
                    Attempt(served.name, provider.name, response.status_code, "", (time.monotonic() - started) * 1000)
                )
                if stream:
                    return Outcome(served, attempts, retries, stream=response.aiter_lines(), close=response.aclose)
                return Outcome(served, attempts, retries, body=response.content)
            except openai.APIStatusError as error:
                last_error = _status_error(provider.name, error)
                message = _error_message(error)[0]
                attempts.append(
                    Attempt(served.name, provider.name, error.status_code, message, (time.monotonic() - started) * 1000)
                )
                if error.status_code not in RETRYABLE_STATUS | FALLBACK_STATUS:
                    last_error.attempts = attempts
                    raise last_error from None  # the request itself is wrong: no retry, no fallback
                if error.status_code in FALLBACK_STATUS:
                    break
                await run_sync(breaker.record_failure, provider_id=provider.id)
                delay = _backoff(retry_index, _retry_after(error))
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                kind = "timeout" if isinstance(error, openai.APITimeoutError) else "connection error"
                attempts.append(
                    Attempt(served.name, provider.name, None, f"{kind}: {error}", (time.monotonic() - started) * 1000)
                )
                reason = "timed out" if kind == "timeout" else "is unreachable"
                last_error = UpstreamError(
                    504 if kind == "timeout" else 502,
                    f"Provider '{provider.name}' {reason}: {error}",
                    "api_error",
                    "upstream_timeout" if kind == "timeout" else "upstream_unreachable",
                )
                await run_sync(breaker.record_failure, provider_id=provider.id)
                delay = _backoff(retry_index, None)
            is_last_try = retry_index == provider.max_retries
            over_budget = time.monotonic() - model_started + delay > provider.retry_budget_seconds
            if is_last_try or over_budget or time.monotonic() + delay > deadline:
                break
            retries += 1
            await asyncio.sleep(delay)
    failure = last_error or UpstreamError(503, "No model could serve the request.", "api_error", "no_model")
    failure.attempts = attempts
    raise failure


async def drain(stream: AsyncIterator[str], timeout: float = 1.0) -> None:
    """Read what follows a stream's `[DONE]` (normally just the end of the HTTP body). A
    response read to its end returns its connection to the pool; one closed early closes it,
    and the next call pays for a new connection."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in stream:
                pass
    except (TimeoutError, httpx2.HTTPError):
        pass  # a provider that keeps the stream open after [DONE]: closing it is the fallback


def parse_stream_line(line: str) -> dict[str, Any] | None:
    """The JSON of one SSE `data:` line, or None for keep-alives and `[DONE]`."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
