"""An application's cache settings: the audited write behind the API and the page, and the summary
other apps may read.

Values arrive checked: the API's `CacheSettingsInput` and the page's `CacheSettingsForm` refuse
an unknown mode and out-of-range numbers (naming the field) before this module is called; the
table's constraints back them up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import transaction

from accounts import roles
from accounts.caller import Caller
from compliance.services import audit_change
from gateway.semantic_cache.models import CacheSettings
from gateway.semantic_cache.services.state import generation_bump
from gateway.semantic_cache.services.values import DEFAULT_CONFIG, CacheSettingsSummary
from gateway.semantic_cache.types import CacheMode

if TYPE_CHECKING:
    from accounts.models import Application

logger = logging.getLogger(__name__)

_AUDITED_FIELDS = ("mode", "threshold", "ttl_seconds", "max_entries", "cache_nonzero_temperature")


def _settings_audit_state(row: CacheSettings) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _AUDITED_FIELDS}


def cache_settings_set(
    *,
    caller: Caller,
    application: Application,
    mode: str | None = None,
    threshold: float | None = None,
    ttl_seconds: int | None = None,
    max_entries: int | None = None,
    cache_nonzero_temperature: bool | None = None,
) -> CacheSettings:
    """Change the given fields of the application's cache settings (others keep their value).

    `mode` is a CacheMode value; the numbers are within the bounds the entry points check."""
    caller.require_permission(
        roles.CHANGE_CACHE_SETTINGS,
        team_id=application.team_id,
        action="change this application's cache settings",
    )
    with transaction.atomic():
        row, created = CacheSettings.objects.select_for_update().get_or_create(application=application)
        before = _settings_audit_state(row)
        changes = {
            "mode": mode,
            "threshold": threshold,
            "ttl_seconds": ttl_seconds,
            "max_entries": max_entries,
            "cache_nonzero_temperature": cache_nonzero_temperature,
        }
        for name, value in changes.items():
            if value is not None:
                setattr(row, name, value)
        row.save()
        generation_bump(application.id)
        audit_change(
            actor=caller,
            action="cache.settings_update",
            target_type="accounts.application",
            target_id=application.id,
            team_id=application.team_id,
            application_id=application.id,
            before=before,
            after=_settings_audit_state(row),
            metadata={"application": application.name, "first_settings": created},
        )
    logger.info(
        "semantic cache settings changed",
        extra={"application_id": application.id, "mode": row.mode, "actor": caller.label},
    )
    return row


def cache_settings_summary(application_ids: Iterable[int]) -> dict[int, CacheSettingsSummary]:
    """Each application's cache mode and whether it is on, in one query; an application without
    settings has the defaults (mode off). For other apps (costs' recommendations), which must not
    read the cache's tables."""
    wanted = set(application_ids)
    modes = dict(CacheSettings.objects.filter(application_id__in=wanted).values_list("application_id", "mode"))
    summaries = {}
    for application_id in wanted:
        mode = modes.get(application_id, DEFAULT_CONFIG.mode)
        summaries[application_id] = CacheSettingsSummary(mode=mode, is_on=mode == CacheMode.ON)
    return summaries
