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

# Archiving (keys stop working) and deleting an application, and creating user accounts,
# are team admins' (see the end of this module).
ARCHIVE_APPLICATION = "accounts.archive_application"
DELETE_APPLICATION = "accounts.delete_application"
CREATE_USER = "accounts.create_user"

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


# Compliance: the audit trail (search, verify, export) and call-content retention belong to
# compliance officers and admins only.
VIEW_AUDIT_EVENT = "compliance.view_auditevent"
EXPORT_AUDIT_EVENT = "compliance.export_auditevent"
CHANGE_RETENTION_POLICY = "compliance.change_retentionpolicy"
_AUDIT = frozenset({VIEW_AUDIT_EVENT, EXPORT_AUDIT_EVENT, CHANGE_RETENTION_POLICY})
ROLE_PERMISSIONS[Role.COMPLIANCE_OFFICER] = ROLE_PERMISSIONS[Role.COMPLIANCE_OFFICER] | _AUDIT
ROLE_PERMISSIONS[Role.ADMIN] = ROLE_PERMISSIONS[Role.ADMIN] | _AUDIT

# Costs: every member sees budgets and spend; managers and admins set budgets.
VIEW_BUDGET = "costs.view_budget"
VIEW_SPEND = "costs.view_spend"
ADD_BUDGET = "costs.add_budget"
CHANGE_BUDGET = "costs.change_budget"
DELETE_BUDGET = "costs.delete_budget"
_COSTS_READ = frozenset({VIEW_BUDGET, VIEW_SPEND})
_COSTS_WRITE = frozenset({ADD_BUDGET, CHANGE_BUDGET, DELETE_BUDGET})
for _role in (Role.VIEWER, Role.REVIEWER, Role.COMPLIANCE_OFFICER, Role.PROMPT_ENGINEER):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | _COSTS_READ
for _role in (Role.MANAGER, Role.ADMIN):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | _COSTS_READ | _COSTS_WRITE

# Gateway: every member sees the model catalog (its team's entries and the shared ones);
# admins manage the team's providers and models (the shared catalog is for superusers).
VIEW_CATALOG = "gateway.view_languagemodel"
MANAGE_CATALOG = "gateway.manage_catalog"
for _role in (Role.VIEWER, Role.REVIEWER, Role.COMPLIANCE_OFFICER, Role.PROMPT_ENGINEER, Role.MANAGER):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | {VIEW_CATALOG}
ROLE_PERMISSIONS[Role.ADMIN] = ROLE_PERMISSIONS[Role.ADMIN] | {VIEW_CATALOG, MANAGE_CATALOG}

# Guardrails and data classification (compliance.guardrails): every member reads the policies,
# rules and data sources of their team; admins, managers and compliance officers change them.
VIEW_GUARDRAIL_POLICY = "guardrails.view_guardrailpolicy"
CHANGE_GUARDRAIL_POLICY = "guardrails.change_guardrailpolicy"
VIEW_CLASSIFICATION_RULE = "guardrails.view_classificationrule"
ADD_CLASSIFICATION_RULE = "guardrails.add_classificationrule"
CHANGE_CLASSIFICATION_RULE = "guardrails.change_classificationrule"
DELETE_CLASSIFICATION_RULE = "guardrails.delete_classificationrule"
VIEW_DATA_SOURCE = "guardrails.view_datasource"
ADD_DATA_SOURCE = "guardrails.add_datasource"
CHANGE_DATA_SOURCE = "guardrails.change_datasource"
DELETE_DATA_SOURCE = "guardrails.delete_datasource"
_GUARDRAILS_VIEW = frozenset({VIEW_GUARDRAIL_POLICY, VIEW_CLASSIFICATION_RULE, VIEW_DATA_SOURCE})
_GUARDRAILS_CHANGE = frozenset(
    {
        CHANGE_GUARDRAIL_POLICY,
        ADD_CLASSIFICATION_RULE,
        CHANGE_CLASSIFICATION_RULE,
        DELETE_CLASSIFICATION_RULE,
        ADD_DATA_SOURCE,
        CHANGE_DATA_SOURCE,
        DELETE_DATA_SOURCE,
    }
)
for _role in (Role.VIEWER, Role.REVIEWER, Role.PROMPT_ENGINEER):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | _GUARDRAILS_VIEW
for _role in (Role.ADMIN, Role.MANAGER, Role.COMPLIANCE_OFFICER):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | _GUARDRAILS_VIEW | _GUARDRAILS_CHANGE

# Observability: every member and every key reads its team's call records (a key with the
# `application` role only its own application's, see observability.selectors). Recording calls
# through the ingestion API needs INVOKE_APPLICATION, which the application role already holds.
VIEW_CALL = "observability.view_call"
for _role in Role:
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | {VIEW_CALL}

# Semantic cache (gateway.semantic_cache): every member reads an application's cache settings,
# entries (content above their clearance masked) and shadow reviews; managers and admins change
# the settings and purge; reviewers, managers and admins mark shadow hits right or wrong.
VIEW_CACHE = "semantic_cache.view_cacheentry"
CHANGE_CACHE_SETTINGS = "semantic_cache.change_cachesettings"
PURGE_CACHE = "semantic_cache.delete_cacheentry"
REVIEW_SHADOW_HITS = "semantic_cache.add_shadowreview"
for _role in (Role.VIEWER, Role.REVIEWER, Role.COMPLIANCE_OFFICER, Role.PROMPT_ENGINEER, Role.MANAGER, Role.ADMIN):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | {VIEW_CACHE}
for _role in (Role.MANAGER, Role.ADMIN):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | {CHANGE_CACHE_SETTINGS, PURGE_CACHE, REVIEW_SHADOW_HITS}
ROLE_PERMISSIONS[Role.REVIEWER] = ROLE_PERMISSIONS[Role.REVIEWER] | {REVIEW_SHADOW_HITS}

ROLE_PERMISSIONS[Role.ADMIN] = ROLE_PERMISSIONS[Role.ADMIN] | {ARCHIVE_APPLICATION, DELETE_APPLICATION, CREATE_USER}
