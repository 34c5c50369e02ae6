"""Eval workers call models through the gateway, as any application does, with the official
`openai` SDK: in this process by default (the project's ASGI application behind
`httpx2.ASGITransport`: no server to run, the same pipeline, recorder and budgets), or over HTTP
when EVAL_GATEWAY_URL is set (a worker fleet apart from the web processes).

`complete` returns a `Completion` or raises `CallFailed` saying whether waiting may help
(`retryable`, with the provider's Retry-After when it gave one). A budget refusal (402, or 429
with the code `budget_exceeded`) is final: the item fails with the gateway's message.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx2
import openai
from django.conf import settings
from django.utils.module_loading import import_string

DEFAULT_ASGI_APPLICATION = "controlplane.asgi.application"
# One eval call may take as long as a slow model answer plus the gateway's own retries.
CALL_TIMEOUT_SECONDS = 120.0
MAX_ATTEMPTS = 6  # per item, for retryable failures (429 without a budget, 5xx, connection errors)
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
BUDGET_CODES = {"budget_exceeded", "insufficient_quota"}


@dataclass(frozen=True)
class Completion:
    text: str
    call_id: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: Decimal | None
    latency_ms: float


class CallFailed(Exception):
    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.call_id = ""


def _retry_after(headers: httpx2.Headers | None) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _cost(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Full jitter, or the provider's Retry-After (capped)."""
    if retry_after is not None:
        return min(retry_after, BACKOFF_CAP_SECONDS)
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311 - jitter


class GatewayClient:
    """One per chunk of work (an event loop): holds its HTTP connections."""

    def __init__(self, *, secret: str) -> None:
        base_url = getattr(settings, "EVAL_GATEWAY_URL", "") or ""
        if base_url:
            http_client = httpx2.AsyncClient(timeout=CALL_TIMEOUT_SECONDS)
            url = base_url.rstrip("/") + "/v1"
        else:
            application = import_string(getattr(settings, "EVAL_GATEWAY_ASGI_APPLICATION", DEFAULT_ASGI_APPLICATION))
            http_client = httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=application), timeout=CALL_TIMEOUT_SECONDS
            )
            url = "http://gateway.in-process/v1"
        self._http = http_client
        self.sdk = openai.AsyncOpenAI(
            base_url=url, api_key=secret, http_client=http_client, max_retries=0, timeout=CALL_TIMEOUT_SECONDS
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def complete(self, body: dict[str, Any]) -> Completion:
        """One call (no retries here: the caller decides, see `complete_with_retries`)."""
        started = time.perf_counter()
        payload = dict(body)
        model = payload.pop("model")
        messages = payload.pop("messages", [])
        extra = {name: payload.pop(name) for name in ("prompt", "metadata", "documents") if name in payload}
        try:
            raw = await self.sdk.chat.completions.with_raw_response.create(
                model=model, messages=messages, extra_body=extra or None, **payload
            )
        except openai.APIStatusError as error:
            failure = _status_failure(error)
            failure.call_id = error.response.headers.get("x-controlplane-call-id", "")
            raise failure from None
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise CallFailed(f"The gateway could not be reached: {error}", retryable=True) from None
        completion = raw.parse()
        text = completion.choices[0].message.content if completion.choices else None
        usage = completion.usage
        return Completion(
            text=text or "",
            call_id=raw.headers.get("x-controlplane-call-id", ""),
            model=completion.model or model,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            cost_usd=_cost(raw.headers.get("x-controlplane-cost-usd")),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def complete_with_retries(self, body: dict[str, Any], *, should_stop: Any = None) -> Completion:
        """`complete`, retried with backoff (honouring Retry-After) while the failure is retryable."""
        attempt = 0
        while True:
            try:
                return await self.complete(body)
            except CallFailed as failure:
                attempt += 1
                if not failure.retryable or attempt >= MAX_ATTEMPTS or (should_stop is not None and should_stop()):
                    if failure.retryable:
                        failure.message = f"{failure.message} (gave up after {attempt} attempts)"
                    raise
                await asyncio.sleep(backoff_seconds(attempt - 1, failure.retry_after))


def _status_failure(error: openai.APIStatusError) -> CallFailed:
    body = error.body if isinstance(error.body, dict) else {}
    details = body.get("error", body) if isinstance(body, dict) else {}
    details = details if isinstance(details, dict) else {}
    message = str(details.get("message") or error.message)[:1000]
    code = str(details.get("code") or "")
    error_type = str(details.get("type") or "")
    status = error.status_code
    is_budget = status == 402 or code in BUDGET_CODES or error_type in BUDGET_CODES
    retryable = not is_budget and (status in {408, 429} or status >= 500)
    retry_after = _retry_after(error.response.headers)
    return CallFailed(f"HTTP {status}: {message}", retryable=retryable, status=status, retry_after=retry_after)
