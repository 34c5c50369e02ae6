"""Who may change the catalog.

Entries with a team are managed by that team's admins (`gateway.manage_catalog`); shared
entries (no team) by operators (superusers). `caller=None` is trusted provisioning
(seed_catalog, gateway_sync) and skips the permission checks.
"""

from __future__ import annotations

from accounts import roles
from accounts.caller import Caller


def require_catalog_manager(caller: Caller | None, *, team_id: int | None, action: str) -> None:
    """Team entries: `gateway.manage_catalog` in that team. Shared entries: a superuser."""
    if caller is None:
        return
    caller.require_permission_or_operator(
        roles.MANAGE_CATALOG,
        team_id=team_id,
        action=action,
        operators_only=(
            f"Only operators (superusers) can {action} in the shared catalog; "
            "a team admin can add the team's own providers and models instead."
        ),
    )


def actor(caller: Caller | None) -> str:
    return caller.label if caller is not None else "system"
