"""Recording audit events: cheap inserts that never wait for the chain.

Events are written unsealed; `schedule_sealing` asks a worker to seal them after the
transaction commits (at most one request per second per process; the beat schedule seals
every few seconds anyway, so a lost request only delays sealing).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.caller import Caller, get_caller
from accounts.selectors import team_ids_of_user
from compliance.models import ActorType, AuditEvent
from core.bulk import bulk_insert
from core.logging import request_id_var
from core.requests import request_context

if TYPE_CHECKING:
    from observability.models import Call

logger = logging.getLogger(__name__)

_SEAL_REQUEST_INTERVAL_SECONDS = 1.0
_last_seal_request = 0.0


class Action:
    """Compliance's own action names. Other apps name theirs ("prompt.label_move", accounts.hooks.AuditAction)."""

    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    ACCESS_DENIED = "access.denied"
    LLM_CALL = "llm.call"
    AUDIT_EXPORT = "audit.export"
    AUDIT_VERIFY = "audit.verify"
    RETENTION_UPDATE = "retention.update"
    RETENTION_PURGE = "retention.purge"


def json_safe(value: Any) -> Any:
    """What a JSON column will give back: datetimes, decimals and UUIDs become strings."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _actor_fields(actor: Caller | None) -> dict[str, Any]:
    if actor is None:
        return {"actor_type": ActorType.SYSTEM, "actor_label": "system"}
    if actor.api_key is not None:
        return {
            "actor_type": ActorType.API_KEY,
            "actor_api_key_id": actor.api_key.pk,
            "actor_label": actor.label[:200],
        }
    if actor.user is not None:
        return {"actor_type": ActorType.USER, "actor_user_id": actor.user.pk, "actor_label": actor.label[:200]}
    return {"actor_type": ActorType.ANONYMOUS, "actor_label": "anonymous"}


def audit_record(
    *,
    actor: Caller | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    team_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    metadata: dict[str, Any] | None = None,
    application_id: int | None = None,
) -> AuditEvent:
    """Write one unsealed audit event (one INSERT) and ask for sealing after commit.

    `actor=None` is the system itself (tasks, provisioning commands).
    """
    request_id, ip_address = request_context(request)
    if application_id is None and actor is not None and actor.api_key is not None:
        application_id = actor.api_key.application_id
    event = AuditEvent.objects.create(
        created_at=timezone.now(),
        action=action[:64],
        target_type=target_type[:64],
        target_id=str(target_id)[:64],
        team_id=team_id,
        application_id=application_id,
        before=json_safe(before),
        after=json_safe(after),
        metadata=json_safe(metadata or {}),
        request_id=request_id,
        ip_address=ip_address,
        **_actor_fields(actor),
    )
    schedule_sealing()
    return event


# How a secret (a provider's API key, a data source's text) appears in a change: never its value.
VALUE_SET = "set"
VALUE_NOT_SET = "not set"
VALUE_CHANGED = "changed"


def secret_state(value: str | None) -> str:
    return VALUE_SET if value else VALUE_NOT_SET


def audit_diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(before, after) of a change, reduced to the fields that differ; on a creation (no
    before) or a deletion (no after) the whole state. Callers put secrets in the states as
    secret_state() or VALUE_CHANGED, never as values."""
    if before is None or after is None:
        return before, after
    changed = [name for name in {**before, **after} if before.get(name) != after.get(name)]
    return {name: before.get(name) for name in changed}, {name: after.get(name) for name in changed}


def audit_change(
    *,
    actor: Caller | None,
    action: str,
    target_type: str,
    target_id: Any,
    team_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
    application_id: int | None = None,
) -> AuditEvent | None:
    """Record a configuration change with the before and after of the fields that changed;
    nothing when nothing changed. Call it inside the transaction of the change."""
    changed_before, changed_after = audit_diff(before, after)
    if before is not None and after is not None and not changed_after:
        return None
    return audit_record(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        team_id=team_id,
        before=changed_before,
        after=changed_after,
        metadata=metadata,
        application_id=application_id,
    )


def call_content_sha256(call: Call) -> str:
    """sha256 of a call's canonical content: what was asked, what was answered, by whom and at what cost.

    Stored in the call's audit event, it proves later that a record was not altered, and it
    outlives the content itself when retention purges it.
    """
    content = {
        "id": str(call.id),
        "created_at": call.created_at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
        "team_id": call.team_id,
        "application_id": call.application_id,
        "api_key_id": call.api_key_id,
        "end_user": call.end_user,
        "prompt_version_id": call.prompt_version_id,
        "request_model": call.request_model,
        "response_model": call.response_model,
        "provider": call.provider,
        "request_messages": call.request_messages,
        "request_params": call.request_params,
        "response_text": call.response_text,
        "finish_reason": call.finish_reason,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cost_usd": str(Decimal(call.cost_usd).quantize(Decimal("0.00000001"))),
        "status": call.status,
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)
    return hashlib.sha256(encoded.encode()).hexdigest()


def audit_record_calls(*, calls: Sequence[Call]) -> None:
    """One event per LLM call (a reference and the sha256 of its content), in one bulk insert.

    The gateway's batched recorder calls this inside the transaction of its own bulk insert.
    """
    if not calls:
        return
    request_id = (request_id_var.get() or "")[:128]
    # The event is dated when it is recorded, not when the call began: a call recorded late (a
    # long stream, calls spooled while the database was down) must not look backdated to the
    # sealer (compliance/chain.py). The call's own time is in its record and its content hash.
    recorded_at = timezone.now()
    events = [
        AuditEvent(
            created_at=recorded_at,
            actor_type=ActorType.API_KEY if call.api_key_id else ActorType.SYSTEM,
            actor_api_key_id=call.api_key_id,
            actor_label=(f"api key id {call.api_key_id}" if call.api_key_id else f"application {call.application_id}"),
            action=Action.LLM_CALL,
            target_type="observability.call",
            target_id=str(call.id),
            team_id=call.team_id,
            application_id=call.application_id,
            metadata={
                "content_sha256": call_content_sha256(call),
                "status": call.status,
                "model": call.response_model or call.request_model,
                "source": call.source,
            },
            request_id=request_id,
        )
        for call in calls
    ]
    bulk_insert(AuditEvent, events)
    schedule_sealing()


def schedule_sealing() -> None:
    transaction.on_commit(_request_sealing)


def _request_sealing() -> None:
    global _last_seal_request
    now = time.monotonic()
    if now - _last_seal_request < _SEAL_REQUEST_INTERVAL_SECONDS:
        return  # one was requested a moment ago; it (or beat) seals this event too
    _last_seal_request = now
    # compliance.tasks, the Celery entry points, import the services that import this module:
    # the task is looked up when it is enqueued, after every module is loaded.
    from compliance.tasks import audit_seal

    try:
        audit_seal.delay()
    except Exception:  # a broker outage must not fail the request; beat seals later
        logger.warning("could not enqueue audit sealing; beat will seal pending events", exc_info=True)


# Logins and access denials ---------------------------------------------------------


def _record_per_team(*, team_ids: list[int], **fields: Any) -> None:
    """A user belongs to several teams: each team's compliance officers see the event. With no team,
    the event is visible to superusers only."""
    for team_id in team_ids or [None]:  # type: ignore[list-item]  # None: an event of no team
        audit_record(team_id=team_id, **fields)


def record_login(*, user: Any, request: HttpRequest | None) -> None:
    _record_per_team(
        team_ids=team_ids_of_user(user_id=user.pk),
        actor=Caller(user=user),
        action=Action.LOGIN,
        target_type="auth.user",
        target_id=str(user.pk),
        request=request,
    )


def record_login_failed(*, credentials: dict[str, Any], request: HttpRequest | None) -> None:
    user_model = get_user_model()
    # Django's signal already masks the password; keep only the username.
    username = str(credentials.get(user_model.USERNAME_FIELD) or credentials.get("username") or "")[:150]
    user_id = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).values_list("pk", flat=True).first()
    _record_per_team(
        team_ids=team_ids_of_user(user_id=user_id) if user_id is not None else [],
        actor=None,
        action=Action.LOGIN_FAILED,
        target_type="auth.user",
        target_id=str(user_id or ""),
        request=request,
        metadata={"username": username, "known_user": user_id is not None},
    )


def on_user_logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """Receiver of Django's user_logged_in signal (compliance.apps)."""
    if user is not None:
        record_login(user=user, request=request)


def on_user_login_failed(sender: Any, credentials: Any = None, request: Any = None, **kwargs: Any) -> None:
    """Receiver of Django's user_login_failed signal (compliance.apps)."""
    record_login_failed(credentials=dict(credentials or {}), request=request)


_DENIAL_RECORDED = "_audit_access_denial_recorded"


def was_denial_recorded(request: HttpRequest) -> bool:
    """Whether this request's refusal is already in the denied-access log (one event per refusal)."""
    return bool(getattr(request, _DENIAL_RECORDED, False))


def record_access_denied(*, request: Any, message: str, team_id: int | None = None) -> None:
    """Record a refused request (every PermissionDenied answered to an API or page caller: the
    API's exception handler and compliance.middleware call this).

    The team is the one the refusal names (`team_id` on the error) or, failing that, the
    caller's only team; otherwise the event has no team (superusers see it). Never raises:
    a failure to record is logged, and the caller still gets its 403.
    """
    django_request = getattr(request, "_request", request)
    setattr(django_request, _DENIAL_RECORDED, True)
    try:
        caller = get_caller(request)
        if team_id is None and len(caller.team_ids) == 1:
            team_id = caller.team_ids[0]
        with transaction.atomic():
            audit_record(
                actor=caller,
                action=Action.ACCESS_DENIED,
                target_type="http.path",
                target_id=django_request.path[:64],
                team_id=team_id,
                request=django_request,
                metadata={"method": django_request.method, "path": django_request.path[:500], "message": message[:500]},
            )
    except Exception:  # recording must not turn a 403 into a 500
        logger.exception("could not record an access denial")
