"""Celery entry points for the audit trail: sealing, checkpoints, export jobs, retention."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from compliance import services


@shared_task(acks_late=True, ignore_result=True, time_limit=120, soft_time_limit=100)
def audit_seal() -> int:
    """Seal pending audit events into the chain (beat every few seconds, and after writes)."""
    return services.audit_seal()


@shared_task(acks_late=True, ignore_result=True, time_limit=120, soft_time_limit=100)
def audit_checkpoint() -> int | None:
    """Seal what is pending, then sign the head (beat)."""
    services.audit_seal()
    checkpoint = services.audit_checkpoint_create()
    return checkpoint.sequence if checkpoint is not None else None


@shared_task(bind=True, acks_late=True, ignore_result=True, time_limit=3600, soft_time_limit=3500)
def audit_export_run(self: Any, export_id: str) -> str:
    """Write one export job's file and signed manifest (idempotent: a finished export is left alone)."""
    return services.audit_export_run(export_id=export_id)


@shared_task(acks_late=True, ignore_result=True, time_limit=1800, soft_time_limit=1700)
def retention_purge() -> int:
    """Purge call content older than each team's retention period (beat, hourly)."""
    return services.retention_purge()
