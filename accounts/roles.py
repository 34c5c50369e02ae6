"""Roles are named sets of Django permissions ("app_label.codename").

A role applies within one team: a member's role comes from their membership, a key's from
the key. django-guardian object permissions add rights on single objects on top of the
role (for example edit rights on one prompt) for members of the object's team.
Later apps add their permissions to these sets.
"""

from __future__ import annotations

from accounts.models import Role

VIEW_TEAM = "accounts.view_team"
CHANGE_TEAM = "accounts.change_team"
VIEW_MEMBERSHIP = "accounts.view_membership"
ADD_MEMBERSHIP = "accounts.add_membership"
CHANGE_MEMBERSHIP = "accounts.change_membership"
DELETE_MEMBERSHIP = "accounts.delete_membership"
VIEW_APPLICATION = "accounts.view_application"
ADD_APPLICATION = "accounts.add_application"
CHANGE_APPLICATION = "accounts.change_application"
INVOKE_APPLICATION = "accounts.invoke_application"
VIEW_API_KEY = "accounts.view_apikey"
ADD_API_KEY = "accounts.add_apikey"
CHANGE_API_KEY = "accounts.change_apikey"
VIEW_PROMPT = "prompts.view_prompt"
ADD_PROMPT = "prompts.add_prompt"
CHANGE_PROMPT = "prompts.change_prompt"
DEPLOY_PROMPT = "prompts.deploy_prompt"
USE_PROMPT = "prompts.use_prompt"  # serve a prompt to end users: record experiment exposures

_MEMBER_BASE = frozenset({VIEW_TEAM, VIEW_MEMBERSHIP, VIEW_APPLICATION, VIEW_PROMPT})
_PROMPT_AUTHOR = frozenset({ADD_PROMPT, CHANGE_PROMPT, USE_PROMPT})
_MANAGER = (
    _MEMBER_BASE
    | _PROMPT_AUTHOR
    | {DEPLOY_PROMPT}
    | {
        VIEW_API_KEY,
        ADD_APPLICATION,
        CHANGE_APPLICATION,
        ADD_API_KEY,
        CHANGE_API_KEY,
        INVOKE_APPLICATION,
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: _MEMBER_BASE,
    Role.REVIEWER: _MEMBER_BASE,
    Role.COMPLIANCE_OFFICER: _MEMBER_BASE | {VIEW_API_KEY},
    Role.PROMPT_ENGINEER: _MEMBER_BASE | _PROMPT_AUTHOR | {INVOKE_APPLICATION},
    Role.MANAGER: frozenset(_MANAGER),
    Role.ADMIN: frozenset(_MANAGER | {CHANGE_TEAM, ADD_MEMBERSHIP, CHANGE_MEMBERSHIP, DELETE_MEMBERSHIP}),
    Role.APPLICATION: frozenset({VIEW_TEAM, VIEW_APPLICATION, INVOKE_APPLICATION, VIEW_PROMPT, USE_PROMPT}),
}


def role_permissions(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset())


def role_can_grant(granting_role: str, granted_role: str) -> bool:
    """A caller may hand out a role only if it holds every permission of that role."""
    return role_permissions(granted_role) <= role_permissions(granting_role)
