"""Entries that must not be served again: flagged by a reviewer, invalidated because a label of
their prompt moved, or purged with the whole application's cache."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.caller import Caller
from compliance.services import audit_record
from core.errors import ValidationFailed
from gateway.semantic_cache.models import CacheEntry
from gateway.semantic_cache.services.state import generation_bump, process_state
from prompts.selectors import version_ids_of_prompt

if TYPE_CHECKING:
    from accounts.models import Application

logger = logging.getLogger(__name__)


def _parse_entry_id(entry_id: str) -> str:
    # Entry ids arrive as text from stored call records (Call.cache_entry_id), not from a form.
    try:
        return str(uuid.UUID(str(entry_id)))
    except ValueError:
        raise ValidationFailed(f"'{entry_id}' is not a cache entry id (a UUID).", param="entry_id") from None


def entry_flag(*, entry_id: str, reason: str) -> None:
    """The entry is never served again (for a reviewer or, once feedback lands, a thumbs-down).
    Idempotent; an entry that no longer exists is left alone."""
    parsed = _parse_entry_id(entry_id)
    updated = CacheEntry.objects.filter(id=parsed, flagged_at__isnull=True).update(
        flagged_at=timezone.now(), flag_reason=reason[:2_000]
    )
    # Other processes drop it when they verify it (a lookup re-reads every candidate).
    process_state().registry.remove(parsed)
    if updated:
        logger.info("semantic cache entry flagged", extra={"entry_id": parsed, "reason": reason[:200]})


def entries_invalidate_for_prompt(*, prompt_id: int) -> int:
    """Delete the entries made with any version of the prompt (its label moved). Returns the count.

    The receiver of `prompts.hooks.label_moved` (registered in apps.py)."""
    version_ids = version_ids_of_prompt(prompt_id=prompt_id)
    with transaction.atomic():
        entries = CacheEntry.objects.filter(prompt_version_id__in=version_ids)
        application_ids = set(entries.values_list("application_id", flat=True).distinct())
        deleted, _ = entries.delete()
        for application_id in application_ids:
            generation_bump(application_id)
    if deleted:
        logger.info("semantic cache invalidated for prompt", extra={"prompt_id": prompt_id, "entries": deleted})
    return deleted


def entries_purge(*, caller: Caller, application: Application) -> int:
    """Delete every entry of the application. Returns the count."""
    caller.require_permission(roles.PURGE_CACHE, team_id=application.team_id, action="purge this application's cache")
    with transaction.atomic():
        deleted, _ = CacheEntry.objects.filter(application=application).delete()
        generation_bump(application.id)
        audit_record(
            actor=caller,
            action="cache.purge",
            target_type="accounts.application",
            target_id=str(application.id),
            team_id=application.team_id,
            application_id=application.id,
            metadata={"application": application.name, "entries_deleted": deleted},
        )
    logger.info(
        "semantic cache purged", extra={"application_id": application.id, "entries": deleted, "actor": caller.label}
    )
    return deleted
