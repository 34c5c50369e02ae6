"""Reads, always scoped to what the caller may see.

An object outside the caller's teams is reported as missing (NotFound), never as
forbidden, so that its existence does not leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Model, QuerySet

from accounts import roles
from accounts.caller import Caller
from accounts.models import ApiKey, Application, Invitation, Membership, Team
from accounts.types import Role
from core.errors import NotFound
from core.ids import parse_whole_number

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


# Unscoped reads for trusted callers (commands, Celery tasks, the apps above accounts acting on
# records they already hold): they take ids and names as given and check no caller.


def team_of_id(*, team_id: int) -> Team | None:
    return Team.objects.filter(pk=team_id).first()


def team_of_id_or_name(*, value: str) -> Team | None:
    """The team whose id is `value` (a whole number), else the team named `value`."""
    team_id = parse_whole_number(value)
    team = Team.objects.filter(pk=team_id).first() if team_id is not None else None
    return team or Team.objects.filter(name=value).first()


def team_if_only_one() -> Team | None:
    """The only team, or None when there are none or several."""
    teams = list(Team.objects.all()[:2])
    return teams[0] if len(teams) == 1 else None


def team_time_zone(*, team_id: int) -> str | None:
    return Team.objects.filter(pk=team_id).values_list("time_zone", flat=True).first()


def team_manager_emails(*, team_id: int) -> list[str]:
    """The e-mail addresses of a team's managers and admins (those without one left out), sorted."""
    emails = Membership.objects.filter(team_id=team_id, role__in=[Role.MANAGER, Role.ADMIN]).values_list(
        "user__email", flat=True
    )
    return sorted({email for email in emails if email})


def team_names_of_ids(*, team_ids: Iterable[int]) -> dict[int, str]:
    return dict(Team.objects.filter(pk__in=list(team_ids)).values_list("pk", "name"))


def application_of_team_and_name(*, team_name: str, name: str) -> Application | None:
    return Application.objects.filter(team__name=team_name, name=name).first()


def application_names_of_ids(*, application_ids: Iterable[int], team_ids: Iterable[int]) -> dict[int, str]:
    """Names of those applications that belong to one of `team_ids`."""
    return dict(
        Application.objects.filter(pk__in=list(application_ids), team_id__in=list(team_ids)).values_list("pk", "name")
    )


def api_key_names_of_ids(*, key_ids: Iterable[int], team_ids: Iterable[int]) -> dict[int, str]:
    """Names of those API keys whose application belongs to one of `team_ids`."""
    return dict(
        ApiKey.objects.filter(pk__in=list(key_ids), application__team_id__in=list(team_ids)).values_list("pk", "name")
    )


def application_is_in_team(*, application_id: int, team_id: int) -> bool:
    return Application.objects.filter(team_id=team_id, pk=application_id).exists()


def api_key_is_in_team(*, key_id: int, team_id: int) -> bool:
    return ApiKey.objects.filter(application__team_id=team_id, pk=key_id).exists()


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
