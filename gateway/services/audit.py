"""Audit: every change to providers, models and routing, with before and after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accounts.caller import Caller
from compliance.services import audit_change
from gateway.models import LanguageModel, Provider

if TYPE_CHECKING:
    from accounts.models import Application


def audit_catalog(
    caller: Caller | None,
    action: str,
    entry: Provider | LanguageModel,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:

    audit_change(
        actor=caller,
        action=action,
        target_type=f"gateway.{entry._meta.model_name}",
        target_id=entry.pk,
        team_id=entry.team_id,
        before=before,
        after=after,
        metadata={"name": entry.name},
    )


def audit_routing(
    caller: Caller | None, application: Application, *, before: dict[str, Any] | None, after: dict[str, Any]
) -> None:

    audit_change(
        actor=caller,
        action="routing.update",
        target_type="accounts.application",
        target_id=application.id,
        team_id=application.team_id,
        application_id=application.id,
        before=before,
        after=after,
        metadata={"application": application.name},
    )
