"""One request through the gateway (POST /v1/chat/completions), top to bottom.

The eleven steps of DESIGN.md's "One request through the gateway" are marked where they
happen (`# N.`). `chat_completions` runs them: steps 1-7 in one hop to the thread pool
(`prepare`), step 8 on the event loop, steps 9-10 in a second hop (`finish`), step 11 on the
event loop. What steps 2-7 decide are frozen values (ResolvedPrompt, Route, InputVerdict,
CacheDecision, and the budget's Reservation), gathered in the frozen Plan; what comes back
from step 8 on is one Result.

Three steps run out of their number's order; moving them would change what is routed,
recorded or charged:
- 7 (route) before 4 (input guardrails): the complexity score reads the messages before any
  redaction, and a call the guardrails refuse is recorded with its route;
- 6 (cache) before 5 (budget): an answer served from the cache calls no model and so
  reserves nothing;
- 5 (budget) may still change 7's choice: a downgrade budget at its limit names a cheaper model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
from django.conf import settings
from django.utils import timezone

from compliance.guardrails import services as guardrails
from compliance.guardrails.types import InjectionAction, PiiAction
from core.errors import ApplicationError, NotFound, ValidationFailed
from core.ids import uuid7
from costs import services as costs
from gateway import breaker, upstream
from gateway.catalog import ServedModel, model_for
from gateway.chat import ChatRequest, parse_chat_request
from gateway.executor import run_sync
from gateway.keys import KeyContext, authenticate
from gateway.routing import route
from gateway.semantic_cache import services as semantic_cache
from observability.recorder import recorder
from observability.services import fit_value
from observability.types import CacheResult, CallStatus
from prompts.selectors import (
    count_messages,
    dropped_document_counts,
    included_documents_level,
    prompt_render,
    prompt_resolve,
)

if TYPE_CHECKING:
    from compliance.guardrails.models import GuardrailPolicy
    from gateway.asgi import Exchange

logger = logging.getLogger("gateway")

# What each step decides ------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedPrompt:
    """Steps 2-3: the messages and parameters for the model, before the input guardrails."""

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    documents: list[dict[str, Any]]  # the caller's documents at or below their clearance
    prompt: dict[str, Any]  # the prompt version's fields of the call record ({} without a prompt)
    context_report: dict[str, Any]
    # The highest classification of the prompt version and the documents the call used; the
    # recorder adds the team's rule matches on input and output (off the response path).
    classification: int


@dataclass(frozen=True)
class Route:
    """Step 7 (and a budget downgrade in step 5): the models to try, in order, and why."""

    chain: tuple[ServedModel, ...]
    reason: str
    tier: str = ""
    score: float | None = None
    baseline_model: str = ""  # what the request would have used without routing (prices the savings)


@dataclass(frozen=True)
class InputVerdict:
    """Step 4: the messages after the input guardrails, and what the output checks need."""

    policy: GuardrailPolicy
    messages: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    restore_map: dict[str, str]
    # Output checks that may change the answer need all of it first: such a stream is
    # fetched whole from the provider and replayed to the client as a stream.
    buffer_stream: bool


@dataclass(frozen=True)
class CacheDecision:
    """Step 6: where the answer would be cached, and what the lookup found."""

    scope: semantic_cache.CacheScope
    lookup: semantic_cache.CacheLookup

    @property
    def hit(self) -> semantic_cache.CacheHit | None:
        """The entry to serve instead of calling a model (mode "on" only)."""
        return self.lookup.hit if self.lookup.mode == "on" else None


@dataclass(frozen=True)
class Plan:
    """Everything steps 1-7 decided: what step 8 calls and steps 9-11 record and answer."""

    call_id: str
    started_at: datetime
    started: float  # perf counter when the request arrived
    key: KeyContext
    request: ChatRequest
    resolved: ResolvedPrompt
    route: Route
    verdict: InputVerdict
    cache: CacheDecision | None  # None: not looked up (an answer with restored personal data)
    reservation: costs.Reservation | None
    params: dict[str, Any]  # sent to the provider: the resolved ones, held to the reserved max_tokens
    breaker_states: dict[int, float | None]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.verdict.messages

    @property
    def cache_hit(self) -> semantic_cache.CacheHit | None:
        return self.cache.hit if self.cache is not None else None


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


@dataclass
class Result:
    """What came back: step 8's answer (or failure), then, from `finish`, the answer after the
    output checks (step 9) and its price (step 10). Not frozen: a stream fills it in as its
    chunks pass through."""

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
    # Set by finish(): the output checks' refusal, and the recorded cost and overhead.
    blocked: ApplicationError | None = None
    cost_usd: Decimal | None = None
    gateway_overhead_ms: float | None = None


class Refused(Exception):
    """A request refused after authentication (guardrail, budget): recorded, then answered."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(error.message)
        self.error = error


# The request, top to bottom --------------------------------------------------------------


async def chat_completions(exchange: Exchange) -> None:
    """POST /v1/chat/completions (gateway.asgi hands it over with the request's headers and body)."""
    body = await exchange.read_body()
    call_id = str(uuid7())
    try:
        plan = await run_sync(
            prepare,
            call_id=call_id,
            started=exchange.started,
            authorization=exchange.headers.get("authorization", ""),
            body=body,
        )
    except Refused as refused:
        # 11. Respond: the refusal, naming the call (recorded by prepare).
        error = refused.error
        headers = {"x-controlplane-call-id": call_id}
        retry_after = getattr(error, "retry_after", None)  # a budget that resets or settles
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        await exchange.respond_application_error(error, headers)
        return
    try:
        if plan.cache_hit is not None:
            await _serve_from_cache(exchange, plan)
        elif plan.request.stream and not plan.verdict.buffer_stream:
            await _stream(exchange, plan)
        else:
            await _complete(exchange, plan)
    except BaseException:
        await _release_unsettled(plan)
        raise


def prepare(*, call_id: str, started: float, authorization: str, body: bytes) -> Plan:
    """Steps 1-7, in the thread pool. Raises Refused (recorded) for a guardrail or budget refusal."""
    # 1. Authenticate the API key.
    key = authenticate(authorization)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ValidationFailed(
            f"The request body is not valid JSON ({error}); send a JSON object.", code="invalid_json"
        ) from None
    request = parse_chat_request(payload)
    started_at = timezone.now()

    # 2-3. Resolve and render the prompt, assembling the context.
    resolved = _resolve(key=key, request=request)

    # 7. Route (before 4: see the module docstring).
    decision = route(
        team_id=key.team_id,
        application_id=key.application_id,
        requested_model=request.model,
        messages=resolved.messages,
    )
    served = model_for(team_id=key.team_id, name=decision.model)
    if served is None:
        raise _model_not_found(decision.model)
    chosen = Route(
        chain=_chain(team_id=key.team_id, first=served, fallbacks=decision.fallbacks),
        reason=decision.reason,
        tier=decision.tier,
        score=decision.score,
        baseline_model=decision.baseline_model,
    )

    # 4. Input guardrails.
    policy = guardrails.policy_for_application(key.application_id)
    messages = resolved.messages
    findings: list[dict[str, Any]] = []
    restore_map: dict[str, str] = {}
    if _input_checks_enabled(policy):
        check = guardrails.check_input(policy=policy, messages=resolved.messages, documents=resolved.documents)
        if check.blocked is not None:
            fields = _request_fields(
                call_id=call_id,
                started_at=started_at,
                key=key,
                request=request,
                resolved=resolved,
                route_reason=chosen.reason,
                messages=resolved.messages,
                params=resolved.params,
                findings=check.findings,
            )
            _refuse(check.blocked, fields, started=started)
        messages, findings, restore_map = check.messages, check.findings, check.restore_map
    verdict = InputVerdict(
        policy=policy,
        messages=messages,
        findings=findings,
        restore_map=restore_map,
        buffer_stream=request.stream and _output_changes_answer(policy, key.team_id),
    )

    # 6. Cache (before 5: see the module docstring). Answers with restored personal data are
    # the caller's own: never cached or served from it.
    cache: CacheDecision | None = None
    if not verdict.restore_map:
        scope = semantic_cache.CacheScope(
            application_id=key.application_id,
            team_id=key.team_id,
            prompt_version_id=resolved.prompt.get("prompt_version_id"),
            model=chosen.chain[0].name,
            clearance=key.clearance,
            params=dict(resolved.params),
        )
        cache = CacheDecision(scope=scope, lookup=semantic_cache.lookup(scope=scope, messages=verdict.messages))
    plan = Plan(
        call_id=call_id,
        started_at=started_at,
        started=started,
        key=key,
        request=request,
        resolved=resolved,
        route=chosen,
        verdict=verdict,
        cache=cache,
        reservation=None,
        params=resolved.params,
        breaker_states={},
    )
    if plan.cache_hit is not None:
        return plan  # served from the cache: no model call, nothing to reserve

    # 5. Budget: reserve the worst case (may downgrade the route).
    plan = _reserve_budget(plan)
    try:
        # 8, made ready: the breakers' state, read here in the thread pool (it may wait on the shared cache).
        return replace(plan, breaker_states=breaker.states(sorted({model.provider.id for model in plan.route.chain})))
    except BaseException:
        _release(plan.reservation)
        raise


def _resolve(*, key: KeyContext, request: ChatRequest) -> ResolvedPrompt:
    """Steps 2-3: the prompt resolved and rendered with the caller's documents, or the
    caller's messages with their documents in front; documents above the caller's clearance
    dropped first (and reported)."""
    messages = list(request.messages)
    params = dict(request.params)
    prompt: dict[str, Any] = {}
    context_report: dict[str, Any] = {}
    classification = 0
    documents: list[dict[str, Any]] = request.documents
    dropped: list[dict[str, Any]] = []
    if documents:
        # 3. Drop documents above the caller's clearance (before rendering: they never reach a template).
        documents, dropped = guardrails.filter_documents(
            documents=documents, caller_clearance=key.clearance, team_id=key.team_id
        )
    if request.prompt is not None:
        # 2. Resolve the prompt (name + label, or an experiment's sticky variant) and render it;
        # 3. the rendering assembles the context within the version's token budget.
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
        # 3. Without a prompt, the documents go in front of the caller's messages.
        messages = [_documents_message(documents), *messages]
        context_report = {
            "documents": [
                {"id": d.get("id"), "included": True, "classification": d.get("classification")} for d in documents
            ]
        }
    classification = max(classification, included_documents_level(context_report) or 0)
    if dropped:
        context_report["dropped_above_clearance"] = dropped
    return ResolvedPrompt(
        messages=messages,
        params=params,
        documents=documents,
        prompt=prompt,
        context_report=context_report,
        classification=classification,
    )


def _documents_message(documents: list[dict[str, Any]]) -> dict[str, str]:
    parts = [f"[{document.get('id', index)}] {document['text']}" for index, document in enumerate(documents, 1)]
    return {"role": "system", "content": "Context documents:\n\n" + "\n\n".join(parts)}


def _model_not_found(name: str) -> NotFound:
    return NotFound(
        f"The model '{name}' does not exist or you do not have access to it; GET /v1/models lists yours.",
        code="model_not_found",
        param="model",
    )


def _chain(*, team_id: int, first: ServedModel, fallbacks: tuple[str, ...]) -> tuple[ServedModel, ...]:
    chain = [first]
    for name in fallbacks or first.fallbacks:
        served = model_for(team_id=team_id, name=name)
        if served is not None and all(served.id != existing.id for existing in chain):
            chain.append(served)
    return tuple(chain)


def _input_checks_enabled(policy: GuardrailPolicy) -> bool:
    return policy.pii_input != PiiAction.ALLOW or policy.injection != InjectionAction.OFF


def _output_changes_answer(policy: GuardrailPolicy, team_id: int) -> bool:
    """Whether output checks may redact, restore or block (and so must see the whole answer)."""
    return (
        policy.pii_output != PiiAction.ALLOW
        or policy.restore_pii_in_response
        or bool(guardrails.team_state(team_id).sources)
    )


def _reserve_budget(plan: Plan) -> Plan:
    """Step 5: reserve the worst case against every budget; refuse, or downgrade the model, at the limit."""
    key, request, first = plan.key, plan.request, plan.route.chain[0]
    input_tokens = count_messages(
        [m for m in plan.messages if isinstance(m.get("content"), str)], model=first.provider_model
    )
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
            for model in plan.route.chain
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
            _refuse(unpriced, _plan_fields(plan, plan.verdict.findings), started=plan.started)
        return plan
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
        _refuse(exceeded, _plan_fields(plan, plan.verdict.findings), started=plan.started)
    try:
        params = plan.params
        if reservation.items and request.max_output_tokens is None:
            # The reservation covers `max_tokens` of output: hold the provider to it.
            params = {**params, "max_tokens": max_tokens}
        chosen = plan.route
        if reservation.downgrade_to:
            downgraded = model_for(team_id=key.team_id, name=reservation.downgrade_to)
            if downgraded is not None:
                chosen = replace(
                    chosen,
                    chain=_chain(team_id=key.team_id, first=downgraded, fallbacks=()),
                    reason=f"budget downgrade to {downgraded.name}",
                )
        return replace(plan, reservation=reservation, params=params, route=chosen)
    except BaseException:
        _release(reservation)
        raise


def _release(reservation: costs.Reservation | None) -> None:
    """Give back the budget reservation of a call that ends without handing a settlement to
    the recorder (an exception anywhere after the reservation); a no-op once handed over."""
    if reservation is not None and reservation.is_open:
        costs.budget_release(reservation=reservation)


async def _release_unsettled(plan: Plan) -> None:
    """After an exception: give back the call's budget reservation unless its settlement
    was handed to the recorder. Shielded: a cancelled request still releases."""
    if plan.reservation is None or not plan.reservation.is_open:
        return
    try:
        await asyncio.shield(run_sync(_release, reservation=plan.reservation))
    except Exception:
        logger.exception("releasing a budget reservation failed; the periodic reclaim will release it")


# 8. Call the provider (or serve the cached answer) -----------------------------------------


async def _call_upstream(exchange: Exchange, plan: Plan, *, stream: bool) -> upstream.Outcome | None:
    """The provider's answer; or, when every attempt failed, the failure recorded and answered."""
    started = time.perf_counter()
    try:
        return await upstream.call(
            chain=plan.route.chain,
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
        # 11. Respond: the provider's failure.
        await exchange.respond_error(
            failure.status, failure.message, failure.error_type, failure.code, extra=_headers(plan, finished)
        )
        return None


async def _complete(exchange: Exchange, plan: Plan) -> None:
    """Steps 8-11 for a whole answer (asked for as JSON, or a stream the output checks must see whole)."""
    upstream_started = time.perf_counter()
    # The client may leave while the provider works: then stop waiting for the provider
    # (its connection is closed), and record the call as cancelled, settling its reservation.
    call = asyncio.ensure_future(_call_upstream(exchange, plan, stream=False))
    watcher = asyncio.ensure_future(exchange.watch_disconnect())
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
    finished = await run_sync(finish, plan=plan, result=result)  # 9-10
    # 11. Respond.
    headers = _headers(plan, finished)
    if finished.blocked is not None:
        await exchange.respond_application_error(finished.blocked, headers)
        return
    body = outcome.body
    if finished.text != result.text and isinstance(payload, dict):
        message["content"] = finished.text  # redacted or restored by the output checks
        body = orjson.dumps(payload)
    # A stream the output checks had to see whole is replayed as a stream.
    await _send_completion(exchange, plan, payload if isinstance(payload, dict) else {}, body, headers)


async def _serve_from_cache(exchange: Exchange, plan: Plan) -> None:
    """Steps 9-11 for the answer the cache found in step 6 (no model called)."""
    hit = plan.cache_hit
    assert hit is not None
    completion = hit.completion
    choice = (completion.get("choices") or [{}])[0]
    result = Result(
        served=plan.route.chain[0],
        status=CallStatus.SUCCESS,
        http_status=200,
        text=(choice.get("message") or {}).get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        response_id=str(completion.get("id") or ""),
        usage=Usage.from_openai(completion.get("usage")),
        from_cache=True,
    )
    finished = await run_sync(finish, plan=plan, result=result)  # 9-10
    # 11. Respond.
    headers = _headers(plan, finished)
    if finished.blocked is not None:
        await exchange.respond_application_error(finished.blocked, headers)
        return
    await _send_completion(exchange, plan, completion, orjson.dumps(completion), headers)


async def _stream(exchange: Exchange, plan: Plan) -> None:
    """Steps 8-11 for a stream passed through as it comes (11 begins before 9-10: the headers
    go out first, the cost and overhead follow as a trailing SSE comment)."""
    upstream_started = time.perf_counter()
    outcome = await _call_upstream(exchange, plan, stream=True)
    if outcome is None:
        return
    result = Result(
        served=outcome.served,
        status=CallStatus.SUCCESS,
        http_status=200,
        attempts=[attempt.as_dict() for attempt in outcome.attempts],
        retries=outcome.retries,
    )
    # 11. Respond: the headers, then the provider's chunks as they come.
    await exchange.start(
        200, b"text/event-stream; charset=utf-8", {**_headers(plan, result), "cache-control": "no-cache"}
    )
    watcher = asyncio.create_task(exchange.watch_disconnect())
    relay = asyncio.create_task(_relay(exchange, plan, outcome, result, upstream_started))
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
    finished = await run_sync(finish, plan=plan, result=result)  # 9-10
    if result.status == CallStatus.SUCCESS:
        trailer = (
            f": x-controlplane-cost-usd={cost_text(finished.cost_usd)} "
            f"x-controlplane-overhead-ms={finished.gateway_overhead_ms:.2f}\n\n"
        )
        await exchange.send({"type": "http.response.body", "body": trailer.encode(), "more_body": True})
    if not exchange.disconnected.is_set():
        await exchange.send({"type": "http.response.body", "body": b""})


async def _relay(
    exchange: Exchange, plan: Plan, outcome: upstream.Outcome, result: Result, upstream_started: float
) -> None:
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
                            result.time_to_first_token_ms = round((time.perf_counter() - exchange.started) * 1000, 3)
                        text_parts.append(delta["content"])
                    if choices[0].get("finish_reason"):
                        result.finish_reason = choices[0]["finish_reason"]
                elif not plan.request.include_usage:
                    continue  # the usage-only chunk the client did not ask for
            is_end = line.strip() == "data: [DONE]"
            if is_end:
                # The answer is whole: a client closing from now on is not a disconnect mid-stream.
                result.completed = True
            await exchange.send({"type": "http.response.body", "body": (line + "\n").encode(), "more_body": True})
            if is_end:
                await upstream.drain(outcome.stream)  # read to the end: the connection goes back to the pool
                break
    finally:
        result.text = "".join(text_parts)
        result.upstream_ms = (time.perf_counter() - upstream_started) * 1000


# 9-10. Check the answer, price it, record the call -----------------------------------------


def finish(*, plan: Plan, result: Result) -> Result:
    """Steps 9-10 in the thread pool: `result` with the answer after the output checks, its
    refusal if they blocked it, and the recorded cost and overhead."""
    # 9. Output guardrails.
    text, findings, blocked = _check_output(plan, result)

    # 10. Record the call and settle the budget reservation.
    model_name = result.served.name if result.served else plan.request.model
    priced = result.served is not None and not result.from_cache
    cost = (
        _call_cost(
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
    overhead_ms = round(max(0.0, total_ms - result.upstream_ms), 3)
    record = {
        **_plan_fields(plan, findings),
        "response_model": model_name if result.served else "",
        "provider": result.served.provider.name if result.served else "",
        "route_tier": plan.route.tier,
        "route_score": plan.route.score,
        "routing_saved_usd": str(_routing_saved(plan, result, cost)),
        **_cache_fields(plan.cache),
        "response_text": text,
        "response_id": result.response_id,
        "finish_reason": result.finish_reason,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cached_tokens": result.usage.cached_tokens,
        "cost_usd": str(cost),
        "latency_ms": round(total_ms, 3),
        "time_to_first_token_ms": result.time_to_first_token_ms,
        "gateway_overhead_ms": overhead_ms,
        "status": CallStatus.REFUSED if blocked is not None else result.status,
        "http_status": blocked.status_code if blocked is not None else result.http_status,
        "error_type": blocked.code if blocked is not None else result.error_type,
        "error_message": blocked.message if blocked is not None else result.error_message,
        "retries": result.retries,
        "attempts": result.attempts,
    }
    reservation = plan.reservation
    if reservation is not None and reservation.items:
        # Settled by the call recorder with the record (off the response path; see costs.budgets).
        # Taken last: an error building the record leaves it open, for _release_unsettled.
        spent = result.served is not None and (result.usage.input_tokens or result.usage.output_tokens)
        record["budget_settlement"] = reservation.settlement(cost if spent else Decimal(0))
    try:
        recorder().submit(record)
    except BaseException:
        if reservation is not None and "budget_settlement" in record:
            # Not handed over: give it back now (should the record be stored after all, its
            # settlement finds the reservation released and gives nothing back twice).
            costs.budget_reservations_release(reservation_ids=[reservation.id])
        raise
    finished = replace(result, text=text, blocked=blocked, cost_usd=cost, gateway_overhead_ms=overhead_ms)
    if blocked is None:
        _cache_fill(plan, finished, findings)
    return finished


def _check_output(plan: Plan, result: Result) -> tuple[str, list[dict[str, Any]], ApplicationError | None]:
    """(the answer's text, the call's findings, the refusal): the input's findings and the
    text unchanged when no output check applies."""
    verdict = plan.verdict
    if result.status != CallStatus.SUCCESS or not result.text:
        return result.text, verdict.findings, None
    if not verdict.restore_map and not _output_changes_answer(verdict.policy, plan.key.team_id):
        return result.text, verdict.findings, None
    check = guardrails.check_output(
        policy=verdict.policy,
        text=result.text,
        caller_clearance=plan.key.clearance,
        team_id=plan.key.team_id,
        restore_map=verdict.restore_map if verdict.policy.restore_pii_in_response else {},
    )
    findings = [*verdict.findings, *check.findings]
    if check.blocked is not None:
        return result.text, findings, check.blocked
    return check.text, findings, None


def _call_cost(*, team_id: int, model: str, usage: Usage, at: datetime, model_id: int | None = None) -> Decimal:
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


def _routing_saved(plan: Plan, result: Result, cost: Decimal) -> Decimal:
    """What the baseline model would have cost for the same tokens, minus what was paid."""
    baseline_model = plan.route.baseline_model
    if result.served is None or not baseline_model or baseline_model == result.served.name:
        return Decimal(0)
    baseline = _call_cost(team_id=plan.key.team_id, model=baseline_model, usage=result.usage, at=plan.started_at)
    return max(Decimal(0), baseline - cost)


def _request_fields(
    *,
    call_id: str,
    started_at: datetime,
    key: KeyContext,
    request: ChatRequest,
    resolved: ResolvedPrompt,
    route_reason: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    """The call record's fields about the request: the same for an answered and a refused call."""
    return {
        "id": call_id,
        "created_at": started_at.isoformat(),
        "team": key.team_id,
        "application": key.application_id,
        "api_key": key.api_key_id,
        "end_user": request.user,
        **resolved.prompt,
        "request_model": request.model,
        "route_reason": route_reason,
        "is_stream": request.stream,
        "request_messages": messages,
        "request_params": params,
        "classification": resolved.classification,
        "context_report": resolved.context_report,
        "guardrail_findings": findings,
        "metadata": request.metadata,
    }


def _plan_fields(plan: Plan, findings: list[dict[str, Any]]) -> dict[str, Any]:
    return _request_fields(
        call_id=plan.call_id,
        started_at=plan.started_at,
        key=plan.key,
        request=plan.request,
        resolved=plan.resolved,
        route_reason=plan.route.reason,
        messages=plan.messages,
        params=plan.params,
        findings=findings,
    )


def _refuse(error: ApplicationError, fields: dict[str, Any], *, started: float) -> NoReturn:
    """Step 10 for a call refused before any model was called (guardrail, budget): record it
    (`fields`: its request's), then raise Refused for step 11."""
    recorder().submit(
        {
            **fields,
            "status": CallStatus.REFUSED,
            "http_status": error.status_code,
            "error_type": error.code,
            "error_message": error.message,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )
    raise Refused(error) from None


def _cache_result(cache: CacheDecision | None) -> CacheResult:
    """What step 6 found, as the call record and the x-controlplane-cache header name it."""
    if cache is None or cache.lookup.mode == "off":
        return CacheResult.NONE
    if cache.lookup.hit is None:
        return CacheResult.MISS
    return CacheResult.HIT if cache.lookup.mode == "on" else CacheResult.SHADOW_HIT


def _cache_fields(cache: CacheDecision | None) -> dict[str, Any]:
    result = _cache_result(cache)
    hit = cache.lookup.hit if cache is not None else None
    if hit is None or result == CacheResult.NONE:
        return {"cache_result": result}
    return {
        "cache_result": result,
        "cache_entry_id": hit.entry_id,
        "cache_similarity": round(hit.similarity, 6),
        "cache_saved_usd": str(hit.cost_saved_usd) if result == CacheResult.HIT else "0",
    }


def _cache_fill(plan: Plan, result: Result, findings: Sequence[dict[str, Any]]) -> None:
    """Only whole, successful, unflagged answers are cached (never errors, partial streams,
    tool calls or answers whose request or response a guardrail flagged)."""
    cache = plan.cache
    if cache is None or cache.lookup.mode == "off" or cache.hit is not None:
        return
    if result.status != CallStatus.SUCCESS or result.served is None or findings:
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
        scope=cache.scope,
        messages=list(plan.messages),
        completion=completion,
        cost_usd=result.cost_usd or Decimal(0),
        embedding=cache.lookup.embedding,
        classification=plan.resolved.classification,
    )


# 11. Respond in the OpenAI shape -----------------------------------------------------------


def cost_text(cost: Any) -> str:
    """A call's cost in USD in fixed notation to the 1e-8 of Call.cost_usd: "0.00000000", never "0E-8"."""
    return f"{Decimal(str(cost)):.8f}"


def _headers(plan: Plan, result: Result) -> dict[str, str]:
    """The call id, route and cache result; the cost and overhead once `finish` set them."""
    served = result.served
    route_header = (
        f"{served.name} ({plan.route.reason}"
        + (", fallback" if served and plan.route.chain[0].id != served.id else "")
        + ")"
        if served
        else ""
    )
    headers = {
        "x-controlplane-call-id": plan.call_id,
        "x-controlplane-route": route_header,
        "x-controlplane-cache": _cache_result(plan.cache).value,
    }
    if plan.request.documents:
        # The caller sent documents: say how many never reached the model (details on the call record).
        dropped, above_clearance = dropped_document_counts(plan.resolved.context_report)
        headers["x-controlplane-documents-dropped"] = str(dropped)
        headers["x-controlplane-documents-dropped-above-clearance"] = str(above_clearance)
    if result.cost_usd is not None and result.gateway_overhead_ms is not None:
        headers["x-controlplane-overhead-ms"] = f"{result.gateway_overhead_ms:.2f}"
        headers["x-controlplane-cost-usd"] = cost_text(result.cost_usd)
    return headers


async def _send_completion(
    exchange: Exchange, plan: Plan, completion: dict[str, Any], body: bytes, headers: dict[str, str]
) -> None:
    """A whole answer: as JSON, or replayed as SSE chunks to a streaming client."""
    if not plan.request.stream:
        await exchange.respond(200, body, headers)
        return
    await exchange.start(200, b"text/event-stream; charset=utf-8", {**headers, "cache-control": "no-cache"})
    for line in completion_as_stream(completion, plan.request.include_usage):
        await exchange.send({"type": "http.response.body", "body": line, "more_body": True})
    await exchange.send({"type": "http.response.body", "body": b""})


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
