"""The dedicated application key eval runs call the gateway with.

Each team gets an application for evaluations ("Evaluations runner"; a second one with the
semantic cache on, for runs that ask for it) and one key per clearance level: a run calls with
the key at its creator's clearance in the team, so the gateway resolves prompts and documents
exactly as it would for that person, and budgets, cost, routing, guardrails and recording
apply as in production. The secret is kept encrypted (core.crypto), never logged.

Provisioning acts for the system, not for the person starting the run (a prompt engineer may
run evals without the right to create applications): `_provisioning_caller` holds the team's
admin grant for this one purpose, and the audit trail records each creation.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts import selectors as accounts_selectors
from accounts import services as accounts_services
from accounts.caller import Caller, TeamGrant
from accounts.types import Role
from core import crypto
from core.classification import Clearance
from evaluations.models import EvalKey
from gateway.semantic_cache import services as cache_services
from gateway.semantic_cache.types import CacheMode

APPLICATION_NAME = "Evaluations runner"
CACHED_APPLICATION_NAME = "Evaluations runner (cache on)"


def _provisioning_caller(team_id: int) -> Caller:
    return Caller(grants={team_id: TeamGrant(role=Role.ADMIN, clearance=Clearance.RESTRICTED)})


def _application_id(*, team_id: int, uses_cache: bool) -> int:
    existing = EvalKey.objects.filter(team_id=team_id, uses_cache=uses_cache).values_list("application_id", flat=True)
    for application_id in existing[:1]:
        return int(application_id)
    caller = _provisioning_caller(team_id)
    team = accounts_selectors.team_get(caller=caller, team_id=team_id)
    name = CACHED_APPLICATION_NAME if uses_cache else APPLICATION_NAME
    for application in accounts_selectors.application_list(caller=caller, team_id=team_id):
        if application.name.lower() == name.lower():
            return int(application.pk)
    application = accounts_services.application_create(
        caller=caller,
        team=team,
        name=name,
        description="Calls made by evaluation runs (created automatically; its keys are used by eval workers).",
    )
    if uses_cache:
        cache_services.cache_settings_set(caller=caller, application=application, mode=CacheMode.ON)
    return int(application.pk)


def eval_key_for(*, team_id: int, clearance: int, uses_cache: bool = False) -> EvalKey:
    """The team's eval key at `clearance` (made on first use; safe under concurrent first uses)."""
    found = EvalKey.objects.filter(team_id=team_id, clearance=clearance, uses_cache=uses_cache).first()
    if found is not None:
        return found
    application_id = _application_id(team_id=team_id, uses_cache=uses_cache)
    caller = _provisioning_caller(team_id)
    application = accounts_selectors.application_get(caller=caller, application_id=application_id)
    label = Clearance(clearance).label
    try:
        with transaction.atomic():
            api_key, secret = accounts_services.api_key_create(
                caller=None,
                application=application,
                name=f"eval runs ({label}{', cache on' if uses_cache else ''})",
                role=Role.APPLICATION,
                clearance=clearance,
            )
            return EvalKey.objects.create(
                team_id=team_id,
                clearance=clearance,
                uses_cache=uses_cache,
                application_id=application_id,
                api_key=api_key,
                secret_encrypted=crypto.encrypt(secret),
            )
    except IntegrityError:  # another run made it first: use theirs (ours was rolled back)
        return EvalKey.objects.get(team_id=team_id, clearance=clearance, uses_cache=uses_cache)


def eval_key_secret(key: EvalKey) -> str:
    return crypto.decrypt(key.secret_encrypted)
