"""Who is calling: a signed-in user or an API key, with a role and clearance per team.

Selectors and services take a `Caller` so that the API and the UI share one set of
access rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from accounts.models import ApiKey, Membership, Role
from accounts.roles import role_permissions
from core.classification import Clearance
from core.errors import PermissionDenied

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class TeamGrant:
    role: str
    clearance: int


@dataclass
class Caller:
    user: User | None = None
    api_key: ApiKey | None = None
    grants: dict[int, TeamGrant] = field(default_factory=dict)

    @property
    def is_api_key(self) -> bool:
        return self.api_key is not None

    @property
    def team_ids(self) -> list[int]:
        return list(self.grants)

    @property
    def application_id(self) -> int | None:
        return self.api_key.application_id if self.api_key is not None else None

    @property
    def is_application_scoped(self) -> bool:
        """A key with the `application` role sees only its own application."""
        return self.api_key is not None and self.api_key.role == Role.APPLICATION

    @property
    def can_create_teams(self) -> bool:
        return self.user is not None and (self.user.is_superuser or self.user.has_perm("accounts.add_team"))

    def role_in(self, team_id: int) -> str | None:
        grant = self.grants.get(team_id)
        return grant.role if grant else None

    def clearance_in(self, team_id: int) -> int:
        grant = self.grants.get(team_id)
        return grant.clearance if grant else Clearance.PUBLIC

    def has_permission(self, permission: str, *, team_id: int, obj: Any = None) -> bool:
        grant = self.grants.get(team_id)
        if grant is None:
            return False
        if permission in role_permissions(grant.role):
            return True
        if obj is not None and self.user is not None:
            # django-guardian: a right granted on this one object.
            return self.user.has_perm(permission, obj)
        return False

    def require_permission(self, permission: str, *, team_id: int, obj: Any = None, action: str) -> None:
        if not self.has_permission(permission, team_id=team_id, obj=obj):
            role = self.role_in(team_id) or "none"
            error = PermissionDenied(
                f"Your role ({role}) does not allow you to {action}; ask a team admin for a role "
                f"that has the '{permission}' permission."
            )
            error.team_id = team_id  # type: ignore[attr-defined]  # read by the access-denial audit
            raise error

    def require_permission_or_operator(
        self, permission: str, *, team_id: int | None, action: str, operators_only: str
    ) -> None:
        """A team's object: `permission` in that team. A shared object (team_id None: it applies
        to every team): operators (superusers) only, refused with the message `operators_only`."""
        if team_id is None:
            if self.user is None or not self.user.is_superuser:
                raise PermissionDenied(operators_only)
            return
        self.require_permission(permission, team_id=team_id, action=action)

    @property
    def label(self) -> str:
        if self.api_key is not None:
            return f"api key {self.api_key.prefix}"
        return f"user {self.user.get_username()}" if self.user is not None else "anonymous"


def caller_for_user(user: AbstractBaseUser | AnonymousUser) -> Caller:
    if not user.is_authenticated:
        return Caller()
    user_id = user.pk
    grants = {
        team_id: TeamGrant(role=role, clearance=clearance)
        for team_id, role, clearance in Membership.objects.filter(user_id=user_id).values_list(
            "team_id", "role", "clearance"
        )
    }
    return Caller(user=user, grants=grants)  # type: ignore[arg-type]  # authenticated users are User


def caller_for_api_key(api_key: ApiKey) -> Caller:
    team_id = api_key.application.team_id
    return Caller(api_key=api_key, grants={team_id: TeamGrant(role=api_key.role, clearance=api_key.clearance)})


def get_caller(request: Any) -> Caller:
    """The caller of an API or page request (a Django or DRF request; built once per request)."""
    django_request = getattr(request, "_request", request)
    caller = getattr(django_request, "caller", None)
    if caller is None:
        caller = caller_for_user(request.user)
        django_request.caller = caller
    return caller
