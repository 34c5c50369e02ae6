"""The gateway's synchronous steps, run off the event loop in the shared executor:
`prepare` (authenticate, resolve and render the prompt, assemble context, pick the model
chain) before the provider call, and `finish` (parse usage, price, record) after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from django.utils import timezone

from controlplane.errors import NotFound
from gateway import breaker
from gateway.catalog import ServedModel, model_for, routing_for
from gateway.chat import ChatRequest, parse_chat_request
from gateway.keys import KeyContext, authenticate
from observability.models import CacheResult, CallStatus
from observability.recorder import recorder


@dataclass
class Plan:
    call_id: str
    started_at: Any
    started: float  # perf counter when the request arrived
    key: KeyContext
    request: ChatRequest
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    chain: list[ServedModel]
    breaker_states: dict[int, float | None]
    route_reason: str
    prompt: dict[str, Any] = field(default_factory=dict)
    context_report: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        )


def _model_not_found(name: str) -> NotFound:
    return NotFound(
        f"The model '{name}' does not exist or you do not have access to it; GET /v1/models lists yours.",
        code="model_not_found",
        param="model",
    )


def _chain(*, team_id: int, first: ServedModel, fallbacks: tuple[str, ...]) -> list[ServedModel]:
    chain = [first]
    for name in fallbacks or first.fallbacks:
        served = model_for(team_id=team_id, name=name)
        if served is not None and all(served.id != existing.id for existing in chain):
            chain.append(served)
    return chain


def _documents_message(documents: list[dict[str, Any]]) -> dict[str, str]:
    parts = [f"[{document.get('id', index)}] {document['text']}" for index, document in enumerate(documents, 1)]
    return {"role": "system", "content": "Context documents:\n\n" + "\n\n".join(parts)}


def prepare(*, call_id: str, started: float, authorization: str, body: bytes) -> tuple[KeyContext | None, Plan]:
    key = authenticate(authorization)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        from controlplane.errors import ValidationFailed

        raise ValidationFailed(
            f"The request body is not valid JSON ({error}); send a JSON object.", code="invalid_json"
        ) from None
    request = parse_chat_request(payload)

    messages = list(request.messages)
    params = dict(request.params)
    prompt: dict[str, Any] = {}
    context_report: dict[str, Any] = {}
    if request.prompt is not None:
        from prompts.selectors import prompt_render, prompt_resolve

        resolved = prompt_resolve(
            caller=key.caller,
            name=request.prompt.name,
            label=request.prompt.label,
            version=request.prompt.version,
            team_id=key.team_id,
            subject=request.user or None,
            metadata=request.metadata,
        )
        rendered = prompt_render(
            caller=key.caller, resolved=resolved, variables=request.prompt.variables, documents=request.documents
        )
        messages = list(rendered["messages"]) + messages
        params = {**{k: v for k, v in resolved.version.params.items() if k != "model"}, **params}
        context_report = rendered.get("context") or {}
        prompt = {
            "prompt_id": resolved.version.prompt_id,
            "prompt_name": resolved.version.prompt,
            "prompt_version_id": resolved.version.version_id,
            "prompt_version": resolved.version.version,
            "experiment_id": resolved.assignment.experiment_id if resolved.assignment else None,
            "experiment_variant": resolved.assignment.variant if resolved.assignment else "",
        }
    elif request.documents:
        messages = [_documents_message(request.documents), *messages]
        context_report = {"documents": [{"id": d.get("id"), "included": True} for d in request.documents]}

    routing = routing_for(application_id=key.application_id)
    if routing is not None and routing.model:
        name, reason = routing.model, f"policy {routing.policy}: {routing.model}"
    else:
        name, reason = request.model, "requested model"
    served = model_for(team_id=key.team_id, name=name)
    if served is None:
        raise _model_not_found(name)
    chain = _chain(team_id=key.team_id, first=served, fallbacks=routing.fallbacks if routing else ())
    plan = Plan(
        call_id=call_id,
        started_at=timezone.now(),
        started=started,
        key=key,
        request=request,
        messages=messages,
        params=params,
        chain=chain,
        breaker_states=breaker.states(sorted({model.provider.id for model in chain})),
        route_reason=reason,
        prompt=prompt,
        context_report=context_report,
    )
    return key, plan


@dataclass
class Result:
    served: ServedModel | None
    status: str
    http_status: int
    text: str = ""
    finish_reason: str = ""
    response_id: str = ""
    usage: Usage = field(default_factory=Usage)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    error_type: str = ""
    error_message: str = ""
    time_to_first_token_ms: float | None = None
    upstream_ms: float = 0.0


def call_cost(*, model: str, usage: Usage, at: Any) -> Decimal:
    try:
        from costs.services import call_cost as price_call
    except ImportError:  # the costs app has no pricing yet
        return Decimal(0)
    return price_call(
        model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        at=at,
    )


def finish(*, plan: Plan, result: Result) -> dict[str, Any]:
    """Price and record the call; returns the record (its id and cost go in the response)."""
    model_name = result.served.name if result.served else plan.request.model
    cost = call_cost(model=model_name, usage=result.usage, at=plan.started_at) if result.served else Decimal(0)
    total_ms = (time.perf_counter() - plan.started) * 1000
    record = {
        "id": plan.call_id,
        "created_at": plan.started_at.isoformat(),
        "team": plan.key.team_id,
        "application": plan.key.application_id,
        "api_key": plan.key.api_key_id,
        "end_user": plan.request.user,
        **plan.prompt,
        "request_model": plan.request.model,
        "response_model": model_name if result.served else "",
        "provider": result.served.provider.name if result.served else "",
        "route_reason": plan.route_reason,
        "cache_result": CacheResult.NONE,
        "is_stream": plan.request.stream,
        "request_messages": plan.messages,
        "request_params": plan.params,
        "response_text": result.text,
        "response_id": result.response_id,
        "finish_reason": result.finish_reason,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cached_tokens": result.usage.cached_tokens,
        "cost_usd": str(cost),
        "latency_ms": round(total_ms, 3),
        "time_to_first_token_ms": result.time_to_first_token_ms,
        "gateway_overhead_ms": round(max(0.0, total_ms - result.upstream_ms), 3),
        "status": result.status,
        "http_status": result.http_status,
        "error_type": result.error_type,
        "error_message": result.error_message,
        "retries": result.retries,
        "attempts": result.attempts,
        "context_report": plan.context_report,
        "guardrail_findings": plan.findings,
        "metadata": plan.request.metadata,
    }
    recorder().submit(record)
    return record


def record_refusal(
    *, call_id: str, started: float, key: KeyContext, error_status: int, error_type: str, message: str
) -> None:
    """A call refused before any model was called (bad input, unknown model, guardrail, budget)."""
    recorder().submit(
        {
            "id": call_id,
            "created_at": timezone.now().isoformat(),
            "team": key.team_id,
            "application": key.application_id,
            "api_key": key.api_key_id,
            "status": CallStatus.REFUSED,
            "http_status": error_status,
            "error_type": error_type,
            "error_message": message,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )
