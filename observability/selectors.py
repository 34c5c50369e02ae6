"""Reads of call records, scoped to what the caller may see and redacted for its clearance.

A call outside the caller's teams (or, for a key with the `application` role, outside its
application) is reported as missing, never as forbidden.

A call classified above the reader's clearance in its team (`Call.classification`: its
prompt version, the documents it used, rule matches on its content) is shown masked: every
text it carries (messages, response, parameters, metadata, errors, document ids) is replaced
in memory by `MASKED_TEXT` and `is_masked` is set; the row itself is never changed. Every
reader (API, pages, the cache's review pages) goes through `calls_masked_for` or `call_view`.
A call the reader may see whole still has the spans the team's rules and data sources
classify above the reader's clearance redacted (`call_view`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Case, CharField, Count, F, IntegerField, Q, QuerySet, Sum, TextField, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDay, TruncHour

from accounts import roles
from accounts.caller import Caller
from compliance.guardrails.services import redact_for_viewer
from core.classification import Clearance
from core.errors import NotFound, ValidationFailed
from observability.filters import CallFilters
from observability.models import Call
from observability.types import CacheResult, CallStatus

# What a list row shows: everything but message bodies and the detailed trace.
SUMMARY_FIELDS = (
    "id",
    "created_at",
    "source",
    "client_call_id",
    "team_id",
    "application_id",
    "api_key_id",
    "end_user",
    "prompt_name",
    "prompt_version",
    "experiment_variant",
    "request_model",
    "response_model",
    "provider",
    "cache_result",
    "is_stream",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "latency_ms",
    "time_to_first_token_ms",
    "gateway_overhead_ms",
    "status",
    "http_status",
    "error_type",
    "retries",
    "metadata",
    "classification",
)

MASKED_TEXT = "[masked: above your clearance]"


def _visible_calls(caller: Caller) -> QuerySet[Call]:
    team_ids = [team_id for team_id in caller.team_ids if caller.has_permission(roles.VIEW_CALL, team_id=team_id)]
    queryset = Call.objects.filter(team_id__in=team_ids)
    if caller.is_application_scoped:
        queryset = queryset.filter(application_id=caller.application_id or 0)
    return queryset


def call_list(*, caller: Caller, filters: CallFilters | None = None) -> QuerySet[Call]:
    """Summaries of the caller's calls, newest first (ids are time-ordered)."""
    queryset = _visible_calls(caller).only(*SUMMARY_FIELDS).order_by("-id")
    if filters is None:
        return queryset
    if filters.application_id is not None:
        queryset = queryset.filter(application_id=filters.application_id)
    if filters.model:
        queryset = queryset.filter(Q(request_model=filters.model) | Q(response_model=filters.model))
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.end_user:
        queryset = queryset.filter(end_user=filters.end_user)
    if filters.prompt:
        queryset = queryset.filter(prompt_name=filters.prompt)
    if filters.cache_result:
        queryset = queryset.filter(cache_result=filters.cache_result)
    if filters.created_from is not None:
        queryset = queryset.filter(created_at__gte=filters.created_from)
    if filters.created_to is not None:
        queryset = queryset.filter(created_at__lte=filters.created_to)
    for index, (key, value) in enumerate(filters.metadata.items()):
        # KeyTextTransform takes the key literally: a key cannot smuggle in a lookup ("a__contains").
        alias = f"metadata_filter_{index}"
        # The cast makes the comparison plain text on every backend (SQLite would compare JSON otherwise).
        as_text = Cast(KeyTextTransform(key, "metadata"), output_field=TextField())
        queryset = queryset.alias(**{alias: as_text}).filter(**{alias: value})
    return queryset


def parse_call_id(value: Any, *, param: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise ValidationFailed(f"'{value}' is not a call id; call ids are UUIDs.", param=param) from None


def call_get(*, caller: Caller, call_id: Any) -> Call:
    parsed = parse_call_id(call_id)
    try:
        return _visible_calls(caller).get(id=parsed)
    except Call.DoesNotExist:
        raise NotFound(f"No call with id {parsed} exists in your teams.") from None


def _masked_strings(value: Any) -> Any:
    """`value` with every string in it (JSON values, not keys) replaced by the marker."""
    if isinstance(value, str):
        return MASKED_TEXT if value else value
    if isinstance(value, dict):
        return {key: _masked_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_strings(item) for item in value]
    return value


def _masked_messages(messages: Any) -> list[Any]:
    """Each message keeps its role only; its content (and tool calls, names) is the marker."""
    masked: list[Any] = []
    for message in messages if isinstance(messages, list) else []:
        role = message.get("role") if isinstance(message, dict) else None
        masked.append({"role": role if isinstance(role, str) else "", "content": MASKED_TEXT})
    return masked


def _masked_attempts(attempts: Any) -> list[Any]:
    """Attempts keep their model, provider, status and timing; an error's text may echo the input."""
    masked: list[Any] = []
    for attempt in attempts if isinstance(attempts, list) else []:
        if isinstance(attempt, dict):
            attempt = {key: _masked_strings(value) if key == "error" else value for key, value in attempt.items()}
        masked.append(attempt)
    return masked


def _masked_context_report(report: Any) -> Any:
    """The report's structure (counts, statuses, reasons, levels) stays; document ids, which a
    caller chooses and may name what a document holds, are masked."""
    if not isinstance(report, dict):
        return report
    masked = dict(report)
    for key in ("documents", "dropped", "dropped_above_clearance"):
        entries = report.get(key)
        if isinstance(entries, list):
            masked[key] = [
                {**entry, "id": MASKED_TEXT} if isinstance(entry, dict) and "id" in entry else entry
                for entry in entries
            ]
    return masked


def _masked_findings(findings: Any) -> list[Any]:
    """Findings keep their type, score, action and rule; a location that names a document by its
    id (`documents[0] (id)`, as the context report's ids are masked) keeps only the index."""
    masked: list[Any] = []
    for finding in findings if isinstance(findings, list) else []:
        location = finding.get("location") if isinstance(finding, dict) else None
        if isinstance(location, str) and " (" in location:
            finding = {**finding, "location": f"{location.split(' (', 1)[0]} ({MASKED_TEXT})"}
        masked.append(finding)
    return masked


_MASKERS: dict[str, Any] = {
    "request_messages": _masked_messages,
    "request_params": _masked_strings,
    "response_text": _masked_strings,
    "error_message": _masked_strings,
    "attempts": _masked_attempts,
    "context_report": _masked_context_report,
    "guardrail_findings": _masked_findings,
    "metadata": _masked_strings,
}


def call_mask_for(*, caller: Caller, call: Call) -> Call:
    """`call` as `caller` may see it: masked in memory (`is_masked`) when it is classified above
    the caller's clearance in its team. Only loaded fields are masked (a list's rows are
    partial); a masked instance must never be saved."""
    if call.classification <= caller.clearance_in(call.team_id):
        return call
    deferred = call.get_deferred_fields()
    for name, mask in _MASKERS.items():
        if name not in deferred:
            setattr(call, name, mask(getattr(call, name)))
    call.is_masked = True
    return call


def calls_masked_for(*, caller: Caller, calls: Iterable[Call]) -> list[Call]:
    return [call_mask_for(caller=caller, call=call) for call in calls]


@dataclass(frozen=True)
class CallView:
    """A call as one viewer may see it: masked whole above the viewer's clearance, otherwise
    with the spans classified above it redacted."""

    call: Call
    request_messages: list[Any]
    response_text: str
    viewer_clearance: int

    @property
    def is_masked(self) -> bool:
        return self.call.is_masked

    @property
    def viewer_clearance_name(self) -> str:
        return str(Clearance(self.viewer_clearance).label)


def _redact_content(content: Any, redact: Any) -> Any:
    if isinstance(content, str):
        return redact(content)
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part = {**part, "text": redact(part["text"])}
            parts.append(part)
        return parts
    return content


def call_view(*, caller: Caller, call: Call) -> CallView:
    """The call's content masked or redacted for the caller's clearance in the call's team (in
    memory: the row stays whole)."""
    clearance = caller.clearance_in(call.team_id)
    call = call_mask_for(caller=caller, call=call)
    if call.is_masked:
        return CallView(
            call=call,
            request_messages=list(call.request_messages),
            response_text=call.response_text,
            viewer_clearance=clearance,
        )

    def redact(text: str) -> str:
        return redact_for_viewer(text=text, viewer_clearance=clearance, team_id=call.team_id)

    messages = []
    for message in call.request_messages or []:
        if isinstance(message, dict) and "content" in message:
            message = {**message, "content": _redact_content(message["content"], redact)}
        messages.append(message)
    return CallView(
        call=call,
        request_messages=messages,
        response_text=redact(call.response_text),
        viewer_clearance=clearance,
    )


# ---------------------------------------------------------------------------------------------
# Unscoped reads for the apps above (costs' budget reclaim, recommendations and summaries):
# no caller, no masking; they return figures and the fields their callers name, never content
# to show a reader.


def call_teams_and_costs(*, call_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[int, Decimal]]:
    """The stored calls among `call_ids`: id -> (team id, cost in USD)."""
    rows = Call.objects.filter(id__in=list(call_ids)).values_list("id", "team_id", "cost_usd")
    return {call_id: (team_id, cost) for call_id, team_id, cost in rows}


def call_small_spend_by_model(
    *, since: datetime, models: Collection[str], max_input_tokens: int, max_output_tokens: int
) -> Iterable[Mapping[str, Any]]:
    """Calls since `since` answered by one of `models` with at most so many input and output
    tokens, per team, application and response model: `calls`, `cost`, `input_tokens`, `output_tokens`."""
    return (
        Call.objects.filter(
            created_at__gte=since,
            response_model__in=list(models),
            input_tokens__lte=max_input_tokens,
            output_tokens__lte=max_output_tokens,
        )
        .values("team_id", "application_id", "response_model")
        .annotate(
            calls=Count("id"),
            cost=Sum("cost_usd"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
    )


def _uncached_successes(*, since: datetime) -> QuerySet[Call]:
    return Call.objects.filter(
        created_at__gte=since,
        status=CallStatus.SUCCESS,
        cache_result__in=[CacheResult.NONE, CacheResult.MISS],
    )


def call_applications_with_uncached_successes(*, since: datetime) -> set[int]:
    """The applications with successful calls since `since` that the cache did not serve."""
    return set(_uncached_successes(since=since).values_list("application_id", flat=True).distinct())


def call_uncached_successes(
    *, since: datetime, excluded_application_ids: Collection[int]
) -> QuerySet[Call, tuple[int, int, datetime, Any, Decimal]]:
    """Successful calls since `since` that the cache did not serve, outside `excluded_application_ids`:
    (team id, application id, created at, request messages, cost in USD)."""
    return (
        _uncached_successes(since=since)
        .exclude(application_id__in=list(excluded_application_ids))
        .values_list("team_id", "application_id", "created_at", "request_messages", "cost_usd")
    )


def call_prompt_context_reports(*, since: datetime) -> QuerySet[Call, tuple[Any, ...]]:
    """Successful calls since `since` of a prompt version, oldest first: (team id, prompt id,
    prompt name, prompt version id, prompt version, response model, request model, input tokens,
    context report)."""
    return (
        Call.objects.filter(
            created_at__gte=since, status=CallStatus.SUCCESS, prompt_version_id__isnull=False, input_tokens__gt=0
        )
        .order_by("created_at")
        .values_list(
            "team_id",
            "prompt_id",
            "prompt_name",
            "prompt_version_id",
            "prompt_version",
            "response_model",
            "request_model",
            "input_tokens",
            "context_report",
        )
    )


def call_spend_by_bucket(
    *,
    team_ids: Collection[int],
    start: datetime,
    end: datetime,
    group_by: str,
    interval: str,
) -> list[dict[str, Any]]:
    """Calls of `team_ids` in [start, end) summed per UTC "hour" or "day" (`bucket`) and `key`, by
    `group_by`: "model" (answered, else asked, else "unknown"), "application", "team", "user" (end
    user), "prompt" (name) or "api_key"; calls without an end user, prompt or API key are left out
    when grouped by it. Each row: `calls`, the token sums, `cost`, `cache_hits`, `cache_saved` and
    `routing_saved` (USD)."""
    key_expression: Any = {
        "model": Case(
            When(~Q(response_model=""), then=F("response_model")),
            When(~Q(request_model=""), then=F("request_model")),
            default=Value("unknown"),
            output_field=CharField(),
        ),
        "application": Cast("application_id", CharField()),
        "team": Cast("team_id", CharField()),
        "user": F("end_user"),
        "prompt": F("prompt_name"),
        "api_key": Cast("api_key_id", CharField()),
    }[group_by]
    calls = Call.objects.filter(team_id__in=team_ids, created_at__gte=start, created_at__lt=end)
    if group_by == "user":
        calls = calls.exclude(end_user="")
    elif group_by == "prompt":
        calls = calls.exclude(prompt_name="")
    elif group_by == "api_key":
        calls = calls.filter(api_key_id__isnull=False)
    truncate = TruncHour if interval == "hour" else TruncDay
    return [
        dict(row)
        for row in calls.annotate(bucket=truncate("created_at", tzinfo=UTC), key=key_expression)
        .values("bucket", "key")
        .annotate(
            calls=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cached_tokens=Sum("cached_tokens"),
            cost=Sum("cost_usd"),
            cache_hits=Sum(
                Case(When(cache_result="hit", then=Value(1)), default=Value(0), output_field=IntegerField())
            ),
            cache_saved=Sum(Case(When(cache_result="hit", then=F("cache_saved_usd")), default=Value(Decimal(0)))),
            routing_saved=Sum("routing_saved_usd"),
        )
        .order_by("bucket", "key")
    ]


# For the gateway's pages (the semantic cache's statistics and shadow review, the routing
# simulation): the caller checked its permission on the application first.


def call_count_of_application(*, application_id: int) -> int:
    """How many calls an application has recorded (accounts refuses to delete one that has any)."""
    return Call.objects.filter(application_id=application_id).count()


def call_cache_counts(*, team_id: int, application_id: int) -> dict[str, Any]:
    """An application's calls by cache result: `calls` (the cache was consulted), `hits`,
    `shadow_hits`, and `saved` (USD the hits saved; None without hits)."""
    return Call.objects.filter(team_id=team_id, application_id=application_id).aggregate(
        calls=Count("id", filter=~Q(cache_result=CacheResult.NONE)),
        hits=Count("id", filter=Q(cache_result=CacheResult.HIT)),
        shadow_hits=Count("id", filter=Q(cache_result=CacheResult.SHADOW_HIT)),
        saved=Sum("cache_saved_usd", filter=Q(cache_result=CacheResult.HIT)),
    )


def call_latest_shadow_hits(*, team_id: int, application_id: int, limit: int) -> list[Call]:
    """An application's latest `limit` shadow hits, newest first (unmasked: show them through `call_view`)."""
    return list(
        Call.objects.filter(
            team_id=team_id, application_id=application_id, cache_result=CacheResult.SHADOW_HIT
        ).order_by("-id")[:limit]
    )


def call_latest_uncached_successes(*, team_id: int, application_id: int, limit: int) -> list[Call]:
    """An application's latest `limit` successful calls the cache did not answer, newest first,
    with their models, messages, token counts and cost only (to price them again)."""
    return list(
        Call.objects.filter(team_id=team_id, application_id=application_id, status=CallStatus.SUCCESS)
        .exclude(cache_result=CacheResult.HIT)
        .only(
            "id",
            "created_at",
            "request_model",
            "response_model",
            "request_messages",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cost_usd",
        )
        .order_by("-created_at", "-id")[:limit]
    )
