"""Reads of the audit trail, scoped to the teams where the caller holds the compliance role.

Events of another team are invisible (a filter or export naming that team is a 404);
events with no team (failed logins of unknown users, for example) are visible to
superusers only.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet

from accounts import roles
from accounts import selectors as account_selectors
from accounts.caller import Caller
from compliance.chain import VerificationReport
from compliance.models import AuditEvent, AuditExport, ExportFormat, RetentionPolicy
from core.dates import parse_moment
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.ids import parse_whole_number

if TYPE_CHECKING:
    from accounts.models import Team

VIEW_AUDIT = roles.VIEW_AUDIT_EVENT
EXPORT_AUDIT = roles.EXPORT_AUDIT_EVENT
CHANGE_RETENTION = roles.CHANGE_RETENTION_POLICY

FILTER_PARAMS = ("since", "until", "team", "application", "actor_user", "actor_api_key", "actor", "action")


@dataclass(frozen=True)
class AuditFilter:
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    team: int | None = None
    application: int | None = None
    actor_user: int | None = None
    actor_api_key: int | None = None
    actor: str = ""  # part of the actor's label ("alice", "api key cp_ab12")
    action: str = ""  # exact, or a prefix ending in "*" ("api_key.*")

    def as_dict(self) -> dict[str, Any]:
        return {
            key: (value.isoformat() if isinstance(value, datetime.datetime) else value)
            for key, value in asdict(self).items()
            if value not in (None, "")
        }


def _parse_id(name: str, raw: str) -> int:
    value = parse_whole_number(raw)
    if value is None:
        raise ValidationFailed(f"{name}: '{raw}' is not an id; send a positive integer.", param=name)
    return value


def single_values(data: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Query or form parameters as one string each (the last one given), blank ones left out."""
    return {key: str(value) for key, value in data.items() if key not in skip and str(value).strip()}


def parse_filters(params: Mapping[str, str], *, allowed_extra: tuple[str, ...] = ()) -> AuditFilter:
    """Filters from query parameters; an unknown parameter or a bad value is a 400 naming it."""
    unknown = sorted(set(params) - set(FILTER_PARAMS) - set(allowed_extra))
    if unknown:
        allowed = ", ".join([*FILTER_PARAMS, *allowed_extra])
        raise ValidationFailed(
            f"Unknown filter {', '.join(unknown)}; the filters are: {allowed}.", param=unknown[0], code="unknown_filter"
        )
    values: dict[str, Any] = {}
    for name in FILTER_PARAMS:
        raw = (params.get(name) or "").strip()
        if not raw:
            continue
        if name in ("since", "until"):
            values[name] = parse_moment(name, raw)
        elif name in ("team", "application", "actor_user", "actor_api_key"):
            values[name] = _parse_id(name, raw)
        else:
            if len(raw) > 200:
                raise ValidationFailed(f"{name}: at most 200 characters.", param=name)
            if "\x00" in raw:  # PostgreSQL text cannot hold it: the query would fail (a 500)
                raise ValidationFailed(f"{name} cannot contain a NUL character.", param=name)
            values[name] = raw
    audit_filter = AuditFilter(**values)
    if audit_filter.since and audit_filter.until and audit_filter.since >= audit_filter.until:
        raise ValidationFailed("since must be before until.", param="since")
    return audit_filter


def parse_format(raw: str | None) -> str:
    value = (raw or "").strip() or ExportFormat.JSONL
    if value not in ExportFormat.values:
        raise ValidationFailed(
            f"format: '{value}' is not an export format; use one of: {', '.join(ExportFormat.values)}.",
            param="format",
        )
    return value


# Scope ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditScope:
    team_ids: list[int]
    includes_teamless: bool


def _is_superuser(caller: Caller) -> bool:
    return caller.user is not None and caller.user.is_superuser


def audit_scope(*, caller: Caller, permission: str = VIEW_AUDIT, team_id: int | None = None) -> AuditScope:
    """The teams whose events the caller may read (or export). 404 for a team that is not theirs,
    403 for a team where their role lacks the permission, or when they have it nowhere."""
    action = "export the audit trail" if permission == EXPORT_AUDIT else "view the audit trail"
    if team_id is not None:
        if team_id not in caller.team_ids:
            raise NotFound(f"No team with id {team_id} exists in your teams.", param="team")
        caller.require_permission(permission, team_id=team_id, action=action)
        return AuditScope(team_ids=[team_id], includes_teamless=False)
    team_ids = [tid for tid in caller.team_ids if caller.has_permission(permission, team_id=tid)]
    if not team_ids and not _is_superuser(caller):
        roles_held = sorted({caller.role_in(tid) or "" for tid in caller.team_ids}) or ["none"]
        raise PermissionDenied(
            f"Your role ({', '.join(roles_held)}) does not allow you to {action}; ask a team admin for the "
            f"compliance officer role (permission '{permission}')."
        )
    return AuditScope(team_ids=team_ids, includes_teamless=_is_superuser(caller))


def can_view_audit(caller: Caller) -> bool:
    return _is_superuser(caller) or any(caller.has_permission(VIEW_AUDIT, team_id=tid) for tid in caller.team_ids)


def audit_event_list(
    *, caller: Caller, audit_filter: AuditFilter, permission: str = VIEW_AUDIT
) -> QuerySet[AuditEvent]:
    scope = audit_scope(caller=caller, permission=permission, team_id=audit_filter.team)
    visible = Q(team_id__in=scope.team_ids)
    if scope.includes_teamless:
        visible |= Q(team_id__isnull=True)
    queryset = AuditEvent.objects.filter(visible)
    if audit_filter.since:
        queryset = queryset.filter(created_at__gte=audit_filter.since)
    if audit_filter.until:
        queryset = queryset.filter(created_at__lt=audit_filter.until)
    if audit_filter.application is not None:
        queryset = queryset.filter(application_id=audit_filter.application)
    if audit_filter.actor_user is not None:
        queryset = queryset.filter(actor_user_id=audit_filter.actor_user)
    if audit_filter.actor_api_key is not None:
        queryset = queryset.filter(actor_api_key_id=audit_filter.actor_api_key)
    if audit_filter.actor:
        queryset = queryset.filter(actor_label__icontains=audit_filter.actor)
    if audit_filter.action.endswith("*"):
        queryset = queryset.filter(action__startswith=audit_filter.action[:-1])
    elif audit_filter.action:
        queryset = queryset.filter(action=audit_filter.action)
    return queryset


# Exports --------------------------------------------------------------------------


def audit_export_list(*, caller: Caller) -> QuerySet[AuditExport]:
    """Exports of teams where the caller may export, plus the caller's own team-less exports."""
    team_ids = [tid for tid in caller.team_ids if caller.has_permission(EXPORT_AUDIT, team_id=tid)]
    own = Q(pk__in=[])
    if caller.api_key is not None:
        own = Q(exporter_api_key_id=caller.api_key.pk)
    elif caller.user is not None:
        own = Q(exporter_user_id=caller.user.pk)
    return AuditExport.objects.filter(Q(team_id__in=team_ids) | (Q(team_id__isnull=True) & own))


def audit_export_get(*, caller: Caller, export_id: uuid.UUID | str) -> AuditExport:
    """An export, for members of its team with the compliance role (403 for other members, 404 otherwise)."""
    try:
        export = AuditExport.objects.get(pk=uuid.UUID(str(export_id)))
    except (AuditExport.DoesNotExist, ValueError):
        raise NotFound(f"No audit export with id {export_id} exists in your teams.") from None
    if export.team_id is not None and export.team_id in caller.team_ids:
        caller.require_permission(EXPORT_AUDIT, team_id=export.team_id, action="download audit exports")
        return export
    if audit_export_list(caller=caller).filter(pk=export.pk).exists():
        return export
    raise NotFound(f"No audit export with id {export_id} exists in your teams.")


# Retention ------------------------------------------------------------------------


def retention_policy_get(*, caller: Caller, team: Team) -> RetentionPolicy:
    caller.require_permission(VIEW_AUDIT, team_id=team.id, action="view this team's retention policy")
    policy = RetentionPolicy.objects.filter(team=team).first()
    return policy or RetentionPolicy(team=team, call_content_days=None)


def retention_scope_teams(*, caller: Caller) -> QuerySet[Team]:
    return account_selectors.team_list(caller=caller).filter(
        id__in=[tid for tid in caller.team_ids if caller.has_permission(VIEW_AUDIT, team_id=tid)]
    )


def audit_verification_for(*, caller: Caller, report: VerificationReport) -> dict[str, Any]:
    """A verification report as the caller may see it.

    An operator (superuser) sees the whole chain. A team's admins and compliance officers learn
    whether the whole chain is intact, but its counts and head only for their own teams' events:
    the system-wide number of events is not theirs to know."""
    result = report.as_dict()
    if _is_superuser(caller):
        return result
    scope = audit_scope(caller=caller)
    events = AuditEvent.objects.filter(team_id__in=scope.team_ids)
    verified = events.filter(sequence__isnull=False, sequence__lte=report.head_sequence)
    head_sequence, head_hash = verified.order_by("-sequence").values_list("sequence", "hash").first() or (0, "")
    result |= {
        "events_verified": verified.count(),
        "pending_events": events.filter(sequence__isnull=True).count(),
        "head_sequence": head_sequence,
        "head_hash": head_hash,
    }
    if report.is_intact:
        result["summary"] = (
            f"Audit chain intact: {result['events_verified']} events of your teams verified up to "
            f"#{head_sequence}, {report.checkpoints_verified} signed checkpoints match, "
            f"{result['pending_events']} events of your teams waiting to be sealed."
        )
    return result
