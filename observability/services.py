"""Writes of call records. The gateway's recorder and the ingestion API both end here."""

from __future__ import annotations

import datetime
import decimal
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import roles
from accounts.selectors import application_get
from compliance.guardrails.services import message_texts, team_state, texts_level
from compliance.services import audit_record_calls
from core.bulk import bulk_insert
from core.classification import Clearance
from core.errors import Conflict, ValidationFailed
from core.ids import uuid7
from observability import hooks
from observability.models import Call, CallSource, CallStatus
from observability.records import fit_record
from observability.records import fit_value as fit_value  # re-exported: the gateway's refusal records

if TYPE_CHECKING:
    from accounts.caller import Caller
    from accounts.models import Application

logger = logging.getLogger(__name__)

_DATETIME_FIELDS = {"created_at"}
_FOREIGN_KEYS = {"team": "team_id", "application": "application_id", "api_key": "api_key_id"}
# What a gateway record carries besides the call's fields: the budget reservation to settle.
_NOT_FIELDS = {"budget_settlement"}


def call_from_record(record: dict[str, Any]) -> Call:
    """A Call from a JSON-ready record (what the spool and the recorder queue hold).

    `record` must be fitted to the columns first (`observability.records.fit_record`):
    `calls_store` does it for every record it is given, whoever built it.
    """
    values = {_FOREIGN_KEYS.get(name, name): value for name, value in record.items() if name not in _NOT_FIELDS}
    values["id"] = uuid.UUID(str(values["id"]))
    for name in _DATETIME_FIELDS:
        value = values.get(name)
        if isinstance(value, str):
            values[name] = parse_datetime(value)
    for name in ("cost_usd", "cache_saved_usd", "routing_saved_usd"):
        if name in values:
            values[name] = decimal.Decimal(str(values[name]))
    return Call(**values)


def calls_store(*, records: Sequence[dict[str, Any]], assume_new: bool = False) -> list[Call]:
    """Store records not stored yet (idempotent by id), in one transaction; returns the new rows.

    Everything that must happen for each new call (budget settlement, cost rollups, audit
    references) happens here, in the same transaction, so that a replayed record is never
    counted twice.

    `assume_new`: the records were made in this process and never stored (the recorder's
    own queue), so the existence check is skipped; if one was stored after all (a retried
    batch whose commit had succeeded), the insert fails on its key and the batch is stored
    again with the check.

    Every record is fitted to the columns first (`observability.records`): a value a client
    or provider sent can never make the database reject the batch.
    """
    records = record_classify([fit_record(record) for record in records])
    calls = [call_from_record(record) for record in records]
    if assume_new:
        try:
            with transaction.atomic():
                return _store(calls, records, existing=set())
        except IntegrityError:
            pass
    with transaction.atomic():
        existing = set(Call.objects.filter(id__in=[call.id for call in calls]).values_list("id", flat=True))
        return _store(calls, records, existing=existing)


def record_classify(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records whose `classification` is the highest of what they carry (the prompt version and
    documents, or what an ingest stated) and what the team's classification rules find in
    their messages and response. Runs where records are stored, off the gateway's response path.
    """
    rules_by_team: dict[Any, Any] = {}
    classified = []
    for record in records:
        level = record.get("classification") or 0
        team_id = record.get("team")
        if team_id not in rules_by_team:
            rules_by_team[team_id] = team_state(int(team_id)).rules if team_id is not None else ()
        rules = rules_by_team[team_id]
        if rules:
            messages = record.get("request_messages")
            texts = message_texts(messages if isinstance(messages, list) else [])
            response = record.get("response_text")
            if isinstance(response, str):
                texts.append(response)
            try:
                detected = texts_level(texts, rules)
            except Exception:
                # A detector that fails must neither lose the record nor leave its content open.
                logger.exception("classification rules failed on a call record; classified restricted")
                detected = int(Clearance.RESTRICTED)
            if detected is not None and detected > level:
                level = detected
        classified.append(record if record.get("classification") == level else {**record, "classification": level})
    return classified


def _store(calls: list[Call], records: Sequence[dict[str, Any]], *, existing: set[uuid.UUID]) -> list[Call]:
    fresh: dict[uuid.UUID, Call] = {}
    settlements: list[dict[str, Any]] = []
    for call, record in zip(calls, records, strict=True):
        if call.id not in existing and call.id not in fresh:
            fresh[call.id] = call
            if record.get("budget_settlement"):
                settlements.append(record["budget_settlement"])
    new_calls = list(fresh.values())
    bulk_insert(Call, new_calls)
    after_store(new_calls)
    if settlements:
        # Last, just before the commit: the budget rows stay locked for as short a time as
        # possible (the gateway's reservations update the same rows).
        hooks.settlements_due(settlements=settlements)
    return new_calls


def after_store(calls: Sequence[Call]) -> None:
    """What every newly stored call sets off, inside the storing transaction: its audit event,
    and what the apps above do with it (`hooks.calls_stored`: cost rollups, experiment exposures)."""
    if not calls:
        return
    hooks.calls_stored(calls=calls)
    audit_record_calls(calls=calls)


# ---------------------------------------------------------------------------------------------
# Ingestion: apps that call models themselves send their records here.

MAX_INGEST_BATCH = 1000
_INGEST_ATTEMPTS = 3  # a concurrent batch with the same client ids makes a store fail once; re-read and retry


@dataclass(frozen=True)
class IngestResult:
    created: list[Call]
    existing: dict[str, uuid.UUID]  # client id -> the call stored earlier


def _ingest_record(*, application: Application, api_key_id: int | None, data: dict[str, Any]) -> dict[str, Any]:
    created_at: datetime.datetime = data.get("created_at") or timezone.now()
    usage = data.get("usage") or {}
    input_tokens = int(usage.get("prompt_tokens", 0))
    output_tokens = int(usage.get("completion_tokens", 0))
    cached_tokens = int(usage.get("cached_tokens", 0))
    model = data["model"]
    response_model = data.get("response_model") or model
    cost = data.get("cost_usd")
    if cost is None:
        cost = hooks.call_cost(
            team_id=application.team_id,
            model=response_model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            at=created_at,
        )
    prompt = data.get("prompt") or {}
    return {
        "id": str(uuid7(at=created_at)),
        "created_at": created_at.isoformat(),
        "source": CallSource.INGESTED,
        "client_call_id": data["id"],
        "team": application.team_id,
        "application": application.id,
        "api_key": api_key_id,
        "end_user": data.get("end_user", ""),
        "prompt_name": prompt.get("name", ""),
        "prompt_version": prompt.get("version"),
        "request_model": model,
        "response_model": response_model,
        "provider": data.get("provider", ""),
        "is_stream": data.get("stream", False),
        "request_messages": data.get("messages", []),
        "request_params": data.get("params", {}),
        "response_text": data.get("response", ""),
        "finish_reason": data.get("finish_reason", ""),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached_tokens,
        "cost_usd": str(cost),
        "latency_ms": data.get("latency_ms"),
        "time_to_first_token_ms": data.get("time_to_first_token_ms"),
        "status": data.get("status", CallStatus.SUCCESS),
        "error_type": data.get("error_type", ""),
        "error_message": data.get("error_message", ""),
        "metadata": data.get("metadata", {}),
        # What the app states; the team's rules on the content can only raise it (calls_store).
        "classification": data.get("classification", Clearance.PUBLIC),
    }


def calls_ingest(
    *,
    caller: Caller,
    records: Sequence[dict[str, Any]],
    application_id: int | None = None,
) -> IngestResult:
    """Store validated records sent by an app, idempotent by their client id within the application.

    An API key records for its own application; a signed-in user names the application and needs
    `accounts.invoke_application` in its team. Records whose client id the application sent
    before are not stored again (they come back in `existing`).
    """
    if len(records) > MAX_INGEST_BATCH:
        raise ValidationFailed(
            f"A batch holds at most {MAX_INGEST_BATCH} calls; you sent {len(records)}. Split it.", param="calls"
        )
    if caller.api_key is not None:
        if application_id is not None and application_id != caller.api_key.application_id:
            raise ValidationFailed(
                "An API key records calls for its own application only; omit 'application'.", param="application"
            )
        application = caller.api_key.application
    else:
        if application_id is None:
            raise ValidationFailed(
                "Name the application the calls belong to in 'application' (its id).", param="application"
            )
        application = application_get(caller=caller, application_id=application_id)
    caller.require_permission(
        roles.INVOKE_APPLICATION, team_id=application.team_id, obj=application, action="record calls for it"
    )
    seen: set[str] = set()
    for index, data in enumerate(records):
        if data["id"] in seen:
            raise ValidationFailed(
                f"Call id '{data['id']}' appears twice in this batch; client ids must be unique.",
                param=f"calls[{index}].id",
            )
        seen.add(data["id"])

    api_key_id = caller.api_key.id if caller.api_key is not None else None
    for attempt in range(_INGEST_ATTEMPTS):
        existing = dict(
            Call.objects.filter(application_id=application.id, client_call_id__in=seen).values_list(
                "client_call_id", "id"
            )
        )
        fresh = [
            _ingest_record(application=application, api_key_id=api_key_id, data=data)
            for data in records
            if data["id"] not in existing
        ]
        try:
            created = calls_store(records=fresh) if fresh else []
        except IntegrityError:
            if attempt == _INGEST_ATTEMPTS - 1:
                raise Conflict(
                    "Another request is storing calls with the same ids right now; send the batch again.",
                    param="calls",
                ) from None
            continue
        return IngestResult(created=created, existing=existing)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# ---------------------------------------------------------------------------------------------
# Retention: compliance decides when a team's call content expires; the calls are ours to blank.


def call_content_purge(*, team_id: int, older_than: datetime.datetime, purged: Callable[[int], object]) -> None:
    """Blank the prompts and responses of the team's calls made before `older_than`, keeping the
    rows (ids, tokens, costs) so that their audit events and content hashes still verify; tell
    `purged` how many calls were blanked (those already blank are not counted). Idempotent.

    The receiver of `compliance.hooks.call_content_expired` (registered in apps.py); it runs in
    compliance's transaction, which records the purge on the audit trail."""
    count = (
        Call.objects.filter(team_id=team_id, created_at__lt=older_than)
        .filter(~Q(response_text="") | ~Q(request_messages=[]))
        .update(request_messages=[], response_text="")
    )
    purged(count)
