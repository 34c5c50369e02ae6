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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from accounts import roles
from accounts.caller import Caller
from core.classification import Clearance
from core.errors import NotFound, ValidationFailed
from observability.filters import CallFilters
from observability.models import Call

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
    from compliance.guardrails.services import redact_for_viewer

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
