"""Reads, always scoped to what the caller may see.

An object outside the caller's teams is reported as missing (NotFound), never as
forbidden, so that its existence does not leak.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Model, QuerySet

from accounts import roles
from accounts.caller import Caller
from accounts.models import ApiKey, Application, Invitation, Membership, Team
from core.errors import NotFound

ModelT = TypeVar("ModelT", bound=Model)


def team_list(*, caller: Caller) -> QuerySet[Team]:
    return Team.objects.filter(id__in=caller.team_ids).annotate(member_count=Count("memberships", distinct=True))


def team_get(*, caller: Caller, team_id: int | str) -> Team:
    team = _get_or_404(team_list(caller=caller), team_id, "team")
    caller.require_permission(roles.VIEW_TEAM, team_id=team.id, action="view this team")
    return team


def team_ids_of_user(*, user_id: int) -> list[int]:
    """The teams a user belongs to, for records made about the user (an audit event per team), not
    for what a caller may see."""
    return list(Membership.objects.filter(user_id=user_id).order_by("team_id").values_list("team_id", flat=True))


def membership_list(*, caller: Caller, team: Team) -> QuerySet[Membership]:
    caller.require_permission(roles.VIEW_MEMBERSHIP, team_id=team.id, action="list this team's members")
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def membership_get(*, caller: Caller, team: Team, user_id: int | str) -> Membership:
    queryset = membership_list(caller=caller, team=team)
    try:
        return queryset.get(user_id=int(user_id))
    except (Membership.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound(f"Team {team.id} has no member with user id {user_id}.") from None


def application_list(
    *, caller: Caller, team_id: int | None = None, archived: bool | None = None
) -> QuerySet[Application]:
    """The caller's applications; `archived` True or False lists only archived or active ones."""
    queryset = Application.objects.filter(team_id__in=caller.team_ids).select_related("team")
    if caller.is_application_scoped:
        queryset = queryset.filter(id=caller.application_id or 0)
    if team_id is not None:
        queryset = queryset.filter(team_id=team_id)
    if archived is not None:
        queryset = queryset.filter(archived_at__isnull=not archived)
    return queryset


def application_get(*, caller: Caller, application_id: int | str) -> Application:
    application = _get_or_404(application_list(caller=caller), application_id, "application")
    caller.require_permission(
        roles.VIEW_APPLICATION, team_id=application.team_id, obj=application, action="view this application"
    )
    return application


def api_key_list(*, caller: Caller, application: Application) -> QuerySet[ApiKey]:
    caller.require_permission(
        roles.VIEW_API_KEY, team_id=application.team_id, obj=application, action="list this application's keys"
    )
    return ApiKey.objects.filter(application=application).select_related("created_by", "revoked_by")


def api_key_get(*, caller: Caller, application: Application, key_id: int | str) -> ApiKey:
    return _get_or_404(api_key_list(caller=caller, application=application), key_id, "API key")


def api_key_of_id(*, key_id: int) -> ApiKey | None:
    """An API key with its application, unscoped: for work done on behalf of the key's holder
    (an export job it queued), which then checks the key is still active."""
    return ApiKey.objects.select_related("application").filter(pk=key_id).first()


def invitation_list(*, caller: Caller, team: Team) -> QuerySet[Invitation]:
    """A team's invitations, newest first: team admins only (they are the ones who invite)."""
    caller.require_permission(roles.CREATE_USER, team_id=team.id, action="list this team's invitations")
    return Invitation.objects.filter(team=team).select_related("created_by", "accepted_by")


def invitation_get(*, caller: Caller, team: Team, invitation_id: int | str) -> Invitation:
    return _get_or_404(invitation_list(caller=caller, team=team), invitation_id, "invitation")


def _get_or_404(queryset: QuerySet[ModelT], object_id: int | str, noun: str) -> ModelT:
    try:
        return queryset.get(pk=int(object_id))
    except (ObjectDoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound(f"No {noun} with id {object_id} exists in your teams.") from None
