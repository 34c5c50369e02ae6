"""Writes of call records. The gateway's recorder and the ingestion API both end here."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils.dateparse import parse_datetime

from observability.models import Call

_DATETIME_FIELDS = {"created_at"}
_FOREIGN_KEYS = {"team": "team_id", "application": "application_id", "api_key": "api_key_id"}


def call_from_record(record: dict[str, Any]) -> Call:
    """A Call from a JSON-ready record (what the spool and the recorder queue hold)."""
    values = {_FOREIGN_KEYS.get(name, name): value for name, value in record.items()}
    values["id"] = uuid.UUID(str(values["id"]))
    for name in _DATETIME_FIELDS:
        value = values.get(name)
        if isinstance(value, str):
            values[name] = parse_datetime(value)
    for name in ("cost_usd", "cache_saved_usd", "routing_saved_usd"):
        if name in values:
            values[name] = decimal.Decimal(str(values[name]))
    return Call(**values)


def record_for_call(call: Call) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for field in Call._meta.concrete_fields:
        value = getattr(call, field.attname)
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime.datetime):
            value = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            value = str(value)
        record[field.attname] = value
    return record


def calls_store(*, records: Sequence[dict[str, Any]]) -> list[Call]:
    """Store records not stored yet (idempotent by id), in one transaction; returns the new rows.

    Everything that must happen for each new call (cost rollups, audit references) happens
    here, in the same transaction, so that a replayed record is never counted twice.
    """
    calls = [call_from_record(record) for record in records]
    with transaction.atomic():
        existing = set(Call.objects.filter(id__in=[call.id for call in calls]).values_list("id", flat=True))
        fresh: dict[uuid.UUID, Call] = {}
        for call in calls:
            if call.id not in existing:
                fresh.setdefault(call.id, call)
        new_calls = Call.objects.bulk_create(list(fresh.values()))
        after_store(new_calls)
    return new_calls


def after_store(calls: Sequence[Call]) -> None:
    """What every newly stored call sets off, inside the storing transaction."""
    if not calls:
        return
    from compliance.services import audit_record_calls
    from costs.services import rollups_apply

    rollups_apply(calls=calls)
    audit_record_calls(calls=calls)
