"""Reads of call records, scoped to what the caller may see and redacted for its clearance.

A call outside the caller's teams (or, for a key with the `application` role, outside its
application) is reported as missing, never as forbidden.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from accounts import roles
from accounts.caller import Caller
from controlplane.errors import NotFound, ValidationFailed
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
)


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


@dataclass(frozen=True)
class CallView:
    """A call as one viewer may see it: content above the viewer's clearance masked."""

    call: Call
    request_messages: list[Any]
    response_text: str
    viewer_clearance: int


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
    """The call's content redacted for the caller's clearance in the call's team (the row stays whole)."""
    from compliance.guardrails.services import redact_for_viewer

    clearance = caller.clearance_in(call.team_id)

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
