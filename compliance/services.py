"""Writes of the audit trail. Other apps call `audit_record` and `audit_record_calls` (from audit.py)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts.caller import Caller, caller_for_api_key, caller_for_user
from compliance import chain, export, hooks, selectors
from compliance.audit import (
    VALUE_CHANGED,
    Action,
    audit_change,
    audit_diff,
    audit_record,
    audit_record_calls,
    call_content_sha256,
    secret_state,
)
from compliance.models import AuditCheckpoint, AuditExport, ExportStatus, RetentionPolicy
from core.errors import ValidationFailed

if TYPE_CHECKING:
    from accounts.models import Team

__all__ = [
    "VALUE_CHANGED",
    "Action",
    "audit_change",
    "audit_checkpoint_create",
    "audit_diff",
    "audit_export_job_create",
    "audit_export_run",
    "audit_export_stream",
    "audit_record",
    "audit_record_calls",
    "audit_seal",
    "audit_verify",
    "call_content_sha256",
    "retention_policy_set",
    "retention_purge",
    "secret_state",
]

logger = logging.getLogger(__name__)
MAX_RETENTION_DAYS = 36500


def audit_seal() -> int:
    return chain.seal_pending()


def audit_checkpoint_create() -> AuditCheckpoint | None:
    return chain.checkpoint_create()


def audit_verify(*, caller: Caller | None, request: HttpRequest | None = None) -> chain.VerificationReport:
    """Verify the whole chain. `caller=None` is the operator's command line."""
    if caller is not None and not selectors.can_view_audit(caller):
        selectors.audit_scope(caller=caller)  # raises the 403 that says what is missing
    report = chain.verify_chain()
    if caller is not None:
        team_id = caller.team_ids[0] if len(caller.team_ids) == 1 else None
        metadata: dict[str, Any] = {"is_intact": report.is_intact}
        if team_id is None:
            # The chain's length counts every team's events: only on an event no team reads
            # (selectors.audit_verification_for shows a team the figures of its own events).
            metadata["head_sequence"] = report.head_sequence
        audit_record(actor=caller, action=Action.AUDIT_VERIFY, team_id=team_id, request=request, metadata=metadata)
    return report


# Exports --------------------------------------------------------------------------


def _exporter_fields(caller: Caller) -> dict[str, Any]:
    return {
        "exporter_user_id": caller.user.pk if caller.user is not None else None,
        "exporter_api_key_id": caller.api_key.pk if caller.api_key is not None else None,
        "exporter_label": caller.label[:200],
    }


def _export_create(
    *, caller: Caller, audit_filter: selectors.AuditFilter, export_format: str, is_streamed: bool, request: Any
) -> AuditExport:
    selectors.audit_scope(caller=caller, permission=selectors.EXPORT_AUDIT, team_id=audit_filter.team)
    with transaction.atomic():
        audit_export = AuditExport.objects.create(
            team_id=audit_filter.team,
            format=export_format,
            filters=audit_filter.as_dict(),
            is_streamed=is_streamed,
            status=ExportStatus.RUNNING if is_streamed else ExportStatus.PENDING,
            **_exporter_fields(caller),
        )
        # Every export is itself audited, before a byte leaves.
        audit_record(
            actor=caller,
            action=Action.AUDIT_EXPORT,
            target_type="compliance.auditexport",
            target_id=str(audit_export.id),
            team_id=audit_filter.team,
            request=request,
            metadata={"format": export_format, "filters": audit_filter.as_dict(), "streamed": is_streamed},
        )
    return audit_export


def _finish(audit_export: AuditExport, signed: dict[str, Any]) -> None:
    manifest = signed["manifest"]
    AuditExport.objects.filter(pk=audit_export.pk).update(
        status=ExportStatus.DONE,
        row_count=manifest["row_count"],
        manifest=signed,
        finished_at=timezone.now(),
    )


def audit_export_stream(
    *, caller: Caller, audit_filter: selectors.AuditFilter, export_format: str, request: Any = None
) -> tuple[AuditExport, Iterator[bytes]]:
    """Start a streamed export: the export record and the iterator of its bytes."""
    events = selectors.audit_event_list(caller=caller, audit_filter=audit_filter, permission=selectors.EXPORT_AUDIT)
    audit_export = _export_create(
        caller=caller, audit_filter=audit_filter, export_format=export_format, is_streamed=True, request=request
    )
    head = chain.chain_head()
    stream = export.generate(
        export=audit_export,
        queryset=export.export_queryset(events, head),
        head=head,
        on_done=lambda signed: _finish(audit_export, signed),
    )
    return audit_export, stream


def export_directory() -> Path:
    directory = Path(settings.VAR_DIR) / "exports"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def export_file_path(audit_export: AuditExport) -> Path:
    return export_directory() / audit_export.filename


def audit_export_job_create(
    *, caller: Caller, audit_filter: selectors.AuditFilter, export_format: str, request: Any = None
) -> AuditExport:
    """Queue an export to a file (for large exports); the job reports progress on the record."""
    if audit_filter.team is None:
        raise ValidationFailed(
            "team: choose the team to export; an export file is shared with that team's compliance officers.",
            param="team",
        )
    audit_export = _export_create(
        caller=caller, audit_filter=audit_filter, export_format=export_format, is_streamed=False, request=request
    )
    # compliance.tasks, the Celery entry points, import this module: the task is looked up when
    # it is enqueued, after every module is loaded.
    from compliance.tasks import audit_export_run as task

    export_id = str(audit_export.id)
    transaction.on_commit(lambda: task.delay(export_id))
    return audit_export


def _exporter_caller(audit_export: AuditExport) -> tuple[Caller | None, str]:
    """The exporter with their current rights: the user, or the API key (its application) that
    queued the job; or why the job cannot run as them any more."""
    if audit_export.exporter_api_key_id is not None:
        api_key = account_selectors.api_key_of_id(key_id=audit_export.exporter_api_key_id)
        if api_key is None:
            return None, "The API key that queued this export no longer exists."
        if not api_key.is_active or api_key.application.archived_at is not None:
            return None, (
                f"The API key that queued this export ({api_key.prefix}) is revoked or expired, or its "
                "application is archived."
            )
        return caller_for_api_key(api_key), ""
    user = (
        get_user_model().objects.filter(pk=audit_export.exporter_user_id).first()
        if audit_export.exporter_user_id is not None
        else None
    )
    if user is None:
        return None, "The exporter's account no longer exists."
    return caller_for_user(user), ""


def audit_export_run(*, export_id: str) -> str:
    """Run a queued export job as its exporter (with the exporter's current rights)."""
    audit_export = AuditExport.objects.filter(pk=uuid.UUID(export_id)).first()
    if audit_export is None or audit_export.status in (ExportStatus.DONE, ExportStatus.FAILED):
        return "skipped"
    caller, refusal = _exporter_caller(audit_export)
    if caller is None:
        AuditExport.objects.filter(pk=audit_export.pk).update(
            status=ExportStatus.FAILED, error=refusal, finished_at=timezone.now()
        )
        return "failed"
    audit_filter = selectors.parse_filters({key: str(value) for key, value in audit_export.filters.items()})
    path = export_file_path(audit_export)
    temporary = path.with_suffix(path.suffix + ".part")
    try:
        events = selectors.audit_event_list(caller=caller, audit_filter=audit_filter, permission=selectors.EXPORT_AUDIT)
        head = chain.chain_head()
        queryset = export.export_queryset(events, head)
        AuditExport.objects.filter(pk=audit_export.pk).update(status=ExportStatus.RUNNING, total_rows=queryset.count())

        def progress(rows: int) -> None:
            if rows % 20000 == 0:
                AuditExport.objects.filter(pk=audit_export.pk).update(row_count=rows)

        signed: dict[str, Any] = {}
        with temporary.open("wb") as handle:
            for chunk in export.generate(
                export=audit_export, queryset=queryset, head=head, on_progress=progress, on_done=signed.update
            ):
                handle.write(chunk)
        os.replace(temporary, path)
        path.with_name(path.name + ".manifest.json").write_text(json.dumps(signed, indent=2) + "\n")
        _finish(audit_export, signed)
    except Exception as error:
        temporary.unlink(missing_ok=True)
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        AuditExport.objects.filter(pk=audit_export.pk).update(
            status=ExportStatus.FAILED, error=str(message)[:2000], finished_at=timezone.now()
        )
        logger.exception("audit export failed", extra={"export_id": export_id})
        return "failed"
    return "done"


# Retention ------------------------------------------------------------------------


def retention_policy_set(
    *, caller: Caller, team: Team, call_content_days: int | None, request: HttpRequest | None = None
) -> RetentionPolicy:
    caller.require_permission(
        selectors.CHANGE_RETENTION, team_id=team.id, action="change this team's retention of call content"
    )
    if call_content_days is not None and not 1 <= call_content_days <= MAX_RETENTION_DAYS:
        raise ValidationFailed(
            f"call_content_days must be between 1 and {MAX_RETENTION_DAYS}, or null to keep call content forever.",
            param="call_content_days",
        )
    with transaction.atomic():
        policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(team=team)
        before = {"call_content_days": policy.call_content_days}
        policy.call_content_days = call_content_days
        policy.save()
        audit_record(
            actor=caller,
            action=Action.RETENTION_UPDATE,
            target_type="compliance.retentionpolicy",
            target_id=str(team.id),
            team_id=team.id,
            before=before,
            after={"call_content_days": call_content_days},
            request=request,
        )
    return policy


def retention_purge() -> int:
    """Blank the prompts and responses of calls older than each team's period. Idempotent.

    The call rows (ids, tokens, costs), their audit events and content hashes stay, so the
    chain still verifies and a kept copy can still be matched to its hash. The calls belong to
    observability, which does the blanking (hooks.call_content_expired).
    """
    purged_total = 0
    now = timezone.now()
    for policy in RetentionPolicy.objects.filter(call_content_days__isnull=False).order_by("team_id"):
        cutoff = now - datetime.timedelta(days=policy.call_content_days or 0)
        counts: list[int] = []
        with transaction.atomic():
            hooks.call_content_expired(team_id=policy.team_id, older_than=cutoff, purged=counts.append)
            purged = sum(counts)
            if purged:
                audit_record(
                    actor=None,
                    action=Action.RETENTION_PURGE,
                    target_type="observability.call",
                    team_id=policy.team_id,
                    metadata={"calls_purged": purged, "older_than": cutoff.isoformat()},
                )
        purged_total += purged
    return purged_total
