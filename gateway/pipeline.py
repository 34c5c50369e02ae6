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
from django.conf import settings
from django.utils import timezone

from compliance.guardrails import services as guardrails
from compliance.guardrails.models import GuardrailPolicy
from compliance.guardrails.types import InjectionAction, PiiAction
from core.errors import ApplicationError, NotFound, ValidationFailed
from costs import services as costs
from costs.budgets import Reservation, budget_release, budget_reservations_release
from gateway import breaker
from gateway.catalog import ServedModel, model_for
from gateway.chat import ChatRequest, parse_chat_request
from gateway.keys import KeyContext, authenticate
from gateway.routing import route
from gateway.semantic_cache import services as semantic_cache
from observability.recorder import recorder
from observability.records import fit_value
from observability.types import CacheResult, CallStatus
from prompts.context import included_documents_level
from prompts.tokens import count_messages


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
    route_tier: str = ""
    route_score: float | None = None
    baseline_model: str = ""  # what the request would have used without routing (prices the savings)
    prompt: dict[str, Any] = field(default_factory=dict)
    context_report: dict[str, Any] = field(default_factory=dict)
    # The highest classification of the prompt version and the documents the call used; the
    # recorder adds the team's rule matches on input and output (off the response path).
    classification: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    policy: GuardrailPolicy | None = None
    restore_map: dict[str, str] = field(default_factory=dict)
    reservation: Reservation | None = None
    # Output checks that may change the answer need all of it first: such a stream is
    # fetched whole from the provider and replayed to the client as a stream.
    buffer_stream: bool = False
    cache_scope: semantic_cache.CacheScope | None = None
    cache_lookup: semantic_cache.CacheLookup | None = None

    @property
    def cache_hit(self) -> semantic_cache.CacheHit | None:
        """The entry to serve instead of calling a model (mode "on" only)."""
        lookup = self.cache_lookup
        return lookup.hit if lookup is not None and lookup.mode == "on" else None


class Refused(Exception):
    """A request refused after authentication (guardrail, budget): answered and recorded."""

    def __init__(self, *, key: KeyContext, error: ApplicationError, record: dict[str, Any]) -> None:
        super().__init__(error.message)
        self.key = key
        self.error = error
        self.record = record


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
        # Counts as the call record's columns hold them (a provider may echo any number back).
        return cls(
            input_tokens=fit_value("input_tokens", usage.get("prompt_tokens")),
            output_tokens=fit_value("output_tokens", usage.get("completion_tokens")),
            cached_tokens=fit_value("cached_tokens", details.get("cached_tokens")) if isinstance(details, dict) else 0,
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


def _input_checks_enabled(policy: GuardrailPolicy) -> bool:
    return policy.pii_input != PiiAction.ALLOW or policy.injection != InjectionAction.OFF


def _output_changes_answer(policy: GuardrailPolicy, team_id: int) -> bool:
    """Whether output checks may redact, restore or block (and so must see the whole answer)."""
    return (
        policy.pii_output != PiiAction.ALLOW
        or policy.restore_pii_in_response
        or bool(guardrails.team_state(team_id).sources)
    )


def prepare(*, call_id: str, started: float, authorization: str, body: bytes) -> Plan:
    key = authenticate(authorization)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ValidationFailed(
            f"The request body is not valid JSON ({error}); send a JSON object.", code="invalid_json"
        ) from None
    request = parse_chat_request(payload)
    started_at = timezone.now()

    messages = list(request.messages)
    params = dict(request.params)
    prompt: dict[str, Any] = {}
    context_report: dict[str, Any] = {}
    classification = 0
    documents: list[dict[str, Any]] = request.documents
    dropped: list[dict[str, Any]] = []
    if documents:
        documents, dropped = guardrails.filter_documents(
            documents=documents, caller_clearance=key.clearance, team_id=key.team_id
        )
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
            caller=key.caller, resolved=resolved, variables=request.prompt.variables, documents=documents
        )
        messages = list(rendered["messages"]) + messages
        params = {**{k: v for k, v in resolved.version.params.items() if k != "model"}, **params}
        context_report = dict(rendered.get("context") or {})
        classification = resolved.version.classification
        prompt = {
            "prompt_id": resolved.version.prompt_id,
            "prompt_name": resolved.version.prompt,
            "prompt_version_id": resolved.version.version_id,
            "prompt_version": resolved.version.version,
            "experiment_id": resolved.assignment.experiment_id if resolved.assignment else None,
            "experiment_variant": resolved.assignment.variant if resolved.assignment else "",
        }
    elif documents:
        messages = [_documents_message(documents), *messages]
        context_report = {
            "documents": [
                {"id": d.get("id"), "included": True, "classification": d.get("classification")} for d in documents
            ]
        }
    classification = max(classification, included_documents_level(context_report) or 0)
    if dropped:
        context_report["dropped_above_clearance"] = dropped

    decision = route(
        team_id=key.team_id, application_id=key.application_id, requested_model=request.model, messages=messages
    )
    served = model_for(team_id=key.team_id, name=decision.model)
    if served is None:
        raise _model_not_found(decision.model)
    chain = _chain(team_id=key.team_id, first=served, fallbacks=decision.fallbacks)
    plan = Plan(
        call_id=call_id,
        started_at=started_at,
        started=started,
        key=key,
        request=request,
        messages=messages,
        params=params,
        chain=chain,
        breaker_states={},
        route_reason=decision.reason,
        route_tier=decision.tier,
        route_score=decision.score,
        baseline_model=decision.baseline_model,
        prompt=prompt,
        context_report=context_report,
        classification=classification,
    )

    policy = guardrails.policy_for_application(key.application_id)
    plan.policy = policy
    if _input_checks_enabled(policy):
        check = guardrails.check_input(policy=policy, messages=messages, documents=documents)
        plan.findings.extend(check.findings)
        if check.blocked is not None:
            raise Refused(key=key, error=check.blocked, record=refusal_record(plan, check.blocked))
        plan.messages = check.messages
        plan.restore_map = check.restore_map
    plan.buffer_stream = request.stream and _output_changes_answer(policy, key.team_id)

    # Answers with restored personal data are the caller's own: never cached or served from it.
    if not plan.restore_map:
        plan.cache_scope = semantic_cache.CacheScope(
            application_id=key.application_id,
            team_id=key.team_id,
            prompt_version_id=prompt.get("prompt_version_id"),
            model=plan.chain[0].name,
            clearance=key.clearance,
            params=dict(plan.params),
        )
        plan.cache_lookup = semantic_cache.lookup(scope=plan.cache_scope, messages=plan.messages)
        if plan.cache_hit is not None:
            return plan  # served from the cache: no model call, nothing to reserve

    try:
        _reserve_budget(plan)
        plan.breaker_states = breaker.states(sorted({model.provider.id for model in plan.chain}))
    except BaseException:
        release_unsettled(plan=plan)
        raise
    return plan


def release_unsettled(*, plan: Plan) -> None:
    """Give back the budget reservation of a call that ends without handing a settlement to
    the recorder (an exception anywhere after the reservation); a no-op once handed over."""
    reservation = plan.reservation
    if reservation is not None and reservation.is_open:
        budget_release(reservation=reservation)


def _reserve_budget(plan: Plan) -> None:
    """Reserve the worst case against every budget; refuse, or downgrade the model, at the limit."""
    key, request = plan.key, plan.request
    input_tokens = count_messages(
        [m for m in plan.messages if isinstance(m.get("content"), str)], model=plan.chain[0].provider_model
    )
    first = plan.chain[0]
    max_tokens = request.max_output_tokens or max(
        1, min(settings.GATEWAY_BUDGET_DEFAULT_MAX_TOKENS, first.context_window - input_tokens)
    )
    try:
        amount = max(
            costs.worst_case_cost(
                team_id=key.team_id,
                model=model.name,
                model_id=model.id,
                input_tokens=input_tokens,
                max_tokens=max_tokens,
                at=plan.started_at,
            )
            for model in plan.chain
        )
    except costs.ModelUnpriced as unpriced:
        # Nothing bounds an unpriced model's cost: refused (nothing reserved) while a budget applies.
        if costs.budgets_apply(
            team_id=key.team_id,
            application_id=key.application_id,
            api_key_id=key.api_key_id,
            end_user=request.user,
            model=first.name,
            metadata=request.metadata,
        ):
            raise Refused(key=key, error=unpriced, record=refusal_record(plan, unpriced)) from None
        return
    try:
        reservation = costs.budget_reserve(
            team_id=key.team_id,
            application_id=key.application_id,
            api_key_id=key.api_key_id,
            end_user=request.user,
            model=first.name,
            metadata=request.metadata,
            amount=amount,
            at=plan.started_at,
            reservation_id=plan.call_id,  # the reclaim matches an open reservation to this call's record
        )
    except costs.BudgetExceeded as exceeded:
        raise Refused(key=key, error=exceeded, record=refusal_record(plan, exceeded)) from None
    plan.reservation = reservation
    if reservation.items and request.max_output_tokens is None:
        # The reservation covers `max_tokens` of output: hold the provider to it.
        plan.params["max_tokens"] = max_tokens
    if reservation.downgrade_to:
        downgraded = model_for(team_id=key.team_id, name=reservation.downgrade_to)
        if downgraded is not None:
            plan.chain = _chain(team_id=key.team_id, first=downgraded, fallbacks=())
            plan.route_reason = f"budget downgrade to {downgraded.name}"


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
    completed: bool = False  # a stream that reached its end ([DONE])
    from_cache: bool = False  # served from the semantic cache: no upstream cost


def call_cost(*, team_id: int, model: str, usage: Usage, at: Any, model_id: int | None = None) -> Decimal:
    """What the call cost at the price of the catalog model that served it (`model_id`, else
    the model `team_id` calls `model`: its own first, never a shared model's price for it)."""
    return costs.call_cost(
        team_id=team_id,
        model=model,
        model_id=model_id,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        at=at,
    )


@dataclass
class Finished:
    record: dict[str, Any]
    text: str  # the answer after output checks (redacted or restored)
    blocked: ApplicationError | None = None


def _check_output(plan: Plan, result: Result) -> ApplicationError | None:
    policy = plan.policy
    if policy is None or result.status != CallStatus.SUCCESS or not result.text:
        return None
    if not plan.restore_map and not _output_changes_answer(policy, plan.key.team_id):
        return None
    check = guardrails.check_output(
        policy=policy,
        text=result.text,
        caller_clearance=plan.key.clearance,
        team_id=plan.key.team_id,
        restore_map=plan.restore_map if policy.restore_pii_in_response else {},
    )
    plan.findings.extend(check.findings)
    if check.blocked is not None:
        return check.blocked
    result.text = check.text
    return None


def _routing_saved(plan: Plan, result: Result, cost: Decimal) -> Decimal:
    """What the baseline model would have cost for the same tokens, minus what was paid."""
    if result.served is None or not plan.baseline_model or plan.baseline_model == result.served.name:
        return Decimal(0)
    baseline = call_cost(team_id=plan.key.team_id, model=plan.baseline_model, usage=result.usage, at=plan.started_at)
    return max(Decimal(0), baseline - cost)


def finish(*, plan: Plan, result: Result) -> Finished:
    """Check the answer, price it, settle the budget and record the call."""
    blocked = _check_output(plan, result)
    model_name = result.served.name if result.served else plan.request.model
    priced = result.served is not None and not result.from_cache
    cost = (
        call_cost(
            team_id=plan.key.team_id,
            model=model_name,
            model_id=result.served.id if result.served is not None else None,
            usage=result.usage,
            at=plan.started_at,
        )
        if priced
        else Decimal(0)
    )
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
        "route_tier": plan.route_tier,
        "route_score": plan.route_score,
        "routing_saved_usd": str(_routing_saved(plan, result, cost)),
        **_cache_fields(plan),
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
        "status": CallStatus.REFUSED if blocked is not None else result.status,
        "http_status": blocked.status_code if blocked is not None else result.http_status,
        "error_type": blocked.code if blocked is not None else result.error_type,
        "error_message": blocked.message if blocked is not None else result.error_message,
        "retries": result.retries,
        "attempts": result.attempts,
        "classification": plan.classification,
        "context_report": plan.context_report,
        "guardrail_findings": plan.findings,
        "metadata": plan.request.metadata,
    }
    reservation = plan.reservation
    if reservation is not None and reservation.items:
        # Settled by the call recorder with the record (off the response path; see costs.budgets).
        # Taken last: an error building the record leaves it open, for release_unsettled.
        spent = result.served is not None and (result.usage.input_tokens or result.usage.output_tokens)
        record["budget_settlement"] = reservation.settlement(cost if spent else Decimal(0))
    try:
        recorder().submit(record)
    except BaseException:
        if reservation is not None and "budget_settlement" in record:
            # Not handed over: give it back now (should the record be stored after all, its
            # settlement finds the reservation released and gives nothing back twice).
            budget_reservations_release(reservation_ids=[reservation.id])
        raise
    if blocked is None:
        _cache_fill(plan, result, cost)
    return Finished(record=record, text=result.text, blocked=blocked)


def _cache_fields(plan: Plan) -> dict[str, Any]:
    lookup = plan.cache_lookup
    if lookup is None or lookup.mode == "off":
        return {"cache_result": CacheResult.NONE}
    if lookup.hit is None:
        return {"cache_result": CacheResult.MISS}
    return {
        "cache_result": CacheResult.HIT if lookup.mode == "on" else CacheResult.SHADOW_HIT,
        "cache_entry_id": lookup.hit.entry_id,
        "cache_similarity": round(lookup.hit.similarity, 6),
        "cache_saved_usd": str(lookup.hit.cost_saved_usd) if lookup.mode == "on" else "0",
    }


def _cache_fill(plan: Plan, result: Result, cost: Decimal) -> None:
    """Only whole, successful, unflagged answers are cached (never errors, partial streams,
    tool calls or answers whose request or response a guardrail flagged)."""
    lookup, scope = plan.cache_lookup, plan.cache_scope
    if lookup is None or scope is None or lookup.mode == "off" or plan.cache_hit is not None:
        return
    if result.status != CallStatus.SUCCESS or result.served is None or plan.findings:
        return
    if result.finish_reason != "stop" or not result.text:
        return
    completion = {
        "id": result.response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.served.provider_model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": result.usage.input_tokens,
            "completion_tokens": result.usage.output_tokens,
            "total_tokens": result.usage.input_tokens + result.usage.output_tokens,
        },
    }
    semantic_cache.store(
        scope=scope,
        messages=list(plan.messages),
        completion=completion,
        cost_usd=cost,
        embedding=lookup.embedding,
        classification=plan.classification,
    )


def refusal_record(plan: Plan, error: ApplicationError) -> dict[str, Any]:
    """The record of a call refused before any model was called (guardrail, budget)."""
    return {
        "id": plan.call_id,
        "created_at": plan.started_at.isoformat(),
        "team": plan.key.team_id,
        "application": plan.key.application_id,
        "api_key": plan.key.api_key_id,
        "end_user": plan.request.user,
        **plan.prompt,
        "request_model": plan.request.model,
        "route_reason": plan.route_reason,
        "is_stream": plan.request.stream,
        "request_messages": plan.messages,
        "request_params": plan.params,
        "status": CallStatus.REFUSED,
        "http_status": error.status_code,
        "error_type": error.code,
        "error_message": error.message,
        "latency_ms": round((time.perf_counter() - plan.started) * 1000, 3),
        "classification": plan.classification,
        "context_report": plan.context_report,
        "guardrail_findings": plan.findings,
        "metadata": plan.request.metadata,
    }


def record_refused(*, refused: Refused) -> None:
    recorder().submit(refused.record)
