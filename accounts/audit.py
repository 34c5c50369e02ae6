"""Accounts' changes on the audit trail, written one way.

Every change to a team, membership, application, API key, account or invitation is recorded
through `accounts.hooks.audit_event` (compliance writes it). The event names its target by the
model's label (`accounts.apikey`, `auth.user`) and its id; `audit_change` derives both from the
changed object, so that each service says only what changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model

from accounts.hooks import audit_event

if TYPE_CHECKING:
    from accounts.caller import Caller


def audit_change(
    actor: Caller | None,
    action: str,
    target: Model,
    *,
    team_id: int,
    target_id: object = None,
    application_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record `action` on `target`, identified by its primary key unless `target_id` is given
    (a membership is named by its user), in the caller's transaction."""
    audit_event(
        actor=actor,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk if target_id is None else target_id),
        team_id=team_id,
        application_id=application_id,
        before=before,
        after=after,
    )
