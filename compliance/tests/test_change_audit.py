"""The most sensitive changes are audited with before and after (never a secret), and refusals
made through pages are in the denied-access log exactly as the API's are."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from accounts.caller import caller_for_user
from accounts.models import ApiKey
from accounts.types import Role
from compliance.audit import Action
from compliance.guardrails import services as guardrails
from compliance.models import AuditEvent
from core.classification import Clearance
from gateway import services as gateway
from gateway.semantic_cache import services as cache
from gateway.semantic_cache.models import DEFAULT_THRESHOLD, DEFAULT_TTL_SECONDS
from prompts import services as prompts

pytestmark = pytest.mark.django_db

FIRST_KEY = "sk-first-secret-0123456789"
SECOND_KEY = "sk-second-secret-9876543210"


def changes(action: str) -> list[tuple[Any, Any]]:
    return [(event.before, event.after) for event in AuditEvent.objects.filter(action=action).order_by("id")]


def all_audit_text() -> str:
    return str(list(AuditEvent.objects.values_list("before", "after", "metadata")))


def admin_of(team):
    return caller_for_user(team.members[Role.ADMIN])


# Providers, models, routing --------------------------------------------------------


def test_provider_create_and_change_are_audited_and_the_key_only_as_changed(team_a):
    admin = admin_of(team_a)

    provider = gateway.provider_create(
        caller=admin, team=team_a.team, name="own", base_url="https://llm.example.com/v1", api_key=FIRST_KEY
    )
    gateway.provider_update(
        caller=admin, provider=provider, base_url="https://other.example.com/v1", api_key=SECOND_KEY
    )
    gateway.provider_update(caller=admin, provider=provider, api_key=SECOND_KEY)  # the same key: no change
    gateway.provider_update(caller=admin, provider=provider, api_key="", max_retries=4)

    [created] = AuditEvent.objects.filter(action="provider.create")
    assert (created.actor_user_id, created.team_id, created.target_type, created.target_id) == (
        team_a.members[Role.ADMIN].id,
        team_a.team.id,
        "gateway.provider",
        str(provider.id),
    )
    assert created.before is None
    assert created.after == {
        "name": "own",
        "base_url": "https://llm.example.com/v1",
        "connect_timeout_seconds": 5.0,
        "read_timeout_seconds": 60.0,
        "max_retries": 2,
        "retry_budget_seconds": 20.0,
        "is_enabled": True,
        "api_key": "set",
    }
    assert changes("provider.update") == [
        (
            {"base_url": "https://llm.example.com/v1", "api_key": "set"},
            {"base_url": "https://other.example.com/v1", "api_key": "changed"},
        ),
        ({"max_retries": 2, "api_key": "set"}, {"max_retries": 4, "api_key": "not set"}),
    ]
    assert FIRST_KEY not in all_audit_text()
    assert SECOND_KEY not in all_audit_text()


def test_provider_changes_through_the_api_are_audited(team_a, client_for):
    client = client_for(team_a.members[Role.ADMIN])

    created = client.post(
        "/api/v1/providers/",
        {"team": team_a.team.id, "name": "api-made", "base_url": "https://llm.example.com/v1", "api_key": FIRST_KEY},
        format="json",
    )
    assert created.status_code == 201, created.content
    changed = client.patch(f"/api/v1/providers/{created.json()['id']}/", {"api_key": SECOND_KEY}, format="json")
    assert changed.status_code == 200, changed.content

    assert changes("provider.update") == [({"api_key": "set"}, {"api_key": "changed"})]
    assert AuditEvent.objects.filter(action="provider.create", actor_user_id=team_a.members[Role.ADMIN].id).count() == 1
    assert FIRST_KEY not in all_audit_text()
    assert SECOND_KEY not in all_audit_text()


def test_model_create_and_change_are_audited(team_a):
    admin = admin_of(team_a)
    provider = gateway.provider_create(caller=admin, team=team_a.team, name="own", base_url="https://x.example.com/v1")

    model = gateway.model_create(
        caller=admin, team=team_a.team, name="team-llama", provider=provider, provider_model="llama"
    )
    gateway.model_update(caller=admin, model=model, context_window=32768, tier="small")
    gateway.model_update(caller=admin, model=model, context_window=32768)  # unchanged: not audited
    gateway.model_disable(caller=admin, model=model)

    assert changes("model.create") == [
        (
            None,
            {
                "name": "team-llama",
                "provider_id": provider.id,
                "provider_model": "llama",
                "context_window": 8192,
                "tier": "medium",
                "fallbacks": [],
                "is_enabled": True,
            },
        )
    ]
    assert changes("model.update") == [
        ({"context_window": 8192, "tier": "medium"}, {"context_window": 32768, "tier": "small"}),
        ({"is_enabled": True}, {"is_enabled": False}),
    ]


def test_routing_policy_changes_are_audited(team_a):
    admin = admin_of(team_a)
    provider = gateway.provider_create(caller=admin, team=team_a.team, name="own", base_url="https://x.example.com/v1")
    for name in ("small-one", "big-one"):
        gateway.model_create(caller=admin, team=team_a.team, name=name, provider=provider, provider_model=name)

    gateway.routing_set(caller=admin, application=team_a.application, model="small-one")
    gateway.routing_set(
        caller=admin,
        application=team_a.application,
        policy="complexity",
        tiers={"small": "small-one", "large": "big-one"},
        threshold=0.25,
        fallbacks=["big-one"],
    )

    [(first_before, first_after), (second_before, second_after)] = changes("routing.update")
    assert first_before is None
    assert first_after == {
        "policy": "fixed",
        "model": "small-one",
        "fallbacks": [],
        "tiers": {},
        "threshold": first_after["threshold"],
        "max_price": None,
    }
    assert (second_before, second_after) == (
        {
            "policy": "fixed",
            "model": "small-one",
            "fallbacks": [],
            "tiers": {},
            "threshold": first_after["threshold"],
        },
        {
            "policy": "complexity",
            "model": "",
            "fallbacks": ["big-one"],
            "tiers": {"small": "small-one", "large": "big-one"},
            "threshold": 0.25,
        },
    )
    event = AuditEvent.objects.filter(action="routing.update").latest("id")
    assert (event.application_id, event.team_id, event.actor_user_id) == (
        team_a.application.id,
        team_a.team.id,
        team_a.members[Role.ADMIN].id,
    )


def test_catalog_sync_changes_are_audited_as_the_system(team_a):
    gateway.catalog_apply(
        team=team_a.team,
        providers=[gateway.ProviderSpec(name="synced", base_url="https://s.example.com/v1", api_key=FIRST_KEY)],
    )
    gateway.catalog_apply(
        team=team_a.team,
        providers=[gateway.ProviderSpec(name="synced", base_url="https://s.example.com/v2", api_key=SECOND_KEY)],
    )
    gateway.catalog_apply(
        team=team_a.team,
        providers=[gateway.ProviderSpec(name="synced", base_url="https://dry.example.com/v1")],
        is_dry_run=True,
    )

    assert [event.actor_type for event in AuditEvent.objects.filter(action__startswith="provider.")] == [
        "system",
        "system",
    ]
    assert changes("provider.update") == [
        (
            {"base_url": "https://s.example.com/v1", "api_key": "set"},
            {"base_url": "https://s.example.com/v2", "api_key": "changed"},
        )
    ]
    assert SECOND_KEY not in all_audit_text()


# Cache ---------------------------------------------------------------------------------


def test_cache_settings_and_purges_are_audited(team_a):
    admin = admin_of(team_a)

    cache.cache_settings_set(caller=admin, application=team_a.application, mode="on", threshold=0.95)
    cache.cache_settings_set(caller=admin, application=team_a.application, ttl_seconds=60, threshold=0.95)
    deleted = cache.entries_purge(caller=admin, application=team_a.application)

    assert changes("cache.settings_update") == [
        ({"mode": "off", "threshold": DEFAULT_THRESHOLD}, {"mode": "on", "threshold": 0.95}),
        ({"ttl_seconds": DEFAULT_TTL_SECONDS}, {"ttl_seconds": 60}),
    ]
    [purge] = AuditEvent.objects.filter(action="cache.purge")
    assert (purge.application_id, purge.team_id, purge.actor_user_id, purge.metadata) == (
        team_a.application.id,
        team_a.team.id,
        team_a.members[Role.ADMIN].id,
        {"application": team_a.application.name, "entries_deleted": deleted},
    )


# Guardrails ----------------------------------------------------------------------------


def test_guardrail_rule_policy_and_data_source_changes_have_before_and_after(team_a):
    admin = admin_of(team_a)
    guardrails.guardrail_policy_update(caller=admin, application=team_a.application, pii_input="redact")
    guardrails.guardrail_policy_update(caller=admin, application=team_a.application, pii_input="block")
    rule = guardrails.classification_rule_create(
        caller=admin, team=team_a.team, name="codename", kind="keywords", level=Clearance.CONFIDENTIAL, keywords=["x"]
    )
    guardrails.classification_rule_update(caller=admin, rule=rule, level=Clearance.RESTRICTED, name="codename2")
    guardrails.classification_rule_delete(caller=admin, rule=rule)
    source = guardrails.data_source_create(
        caller=admin,
        team=team_a.team,
        name="minutes",
        text="board minutes one",
        classification_level=Clearance.INTERNAL,
    )
    guardrails.data_source_update(caller=admin, source=source, text="board minutes two", leak_share=0.5)
    guardrails.data_source_delete(caller=admin, source=source)

    assert changes("guardrails.policy_update") == [
        ({"pii_input": "allow"}, {"pii_input": "redact"}),
        ({"pii_input": "redact"}, {"pii_input": "block"}),
    ]
    assert changes("classification.rule_update") == [
        ({"level": Clearance.CONFIDENTIAL, "name": "codename"}, {"level": Clearance.RESTRICTED, "name": "codename2"})
    ]
    [(deleted_rule, nothing)] = changes("classification.rule_delete")
    assert (deleted_rule["name"], deleted_rule["level"], nothing) == ("codename2", Clearance.RESTRICTED, None)
    assert changes("data_source.update") == [
        ({"leak_share": 0.2, "source_text": "set"}, {"leak_share": 0.5, "source_text": "changed"})
    ]
    [(deleted_source, nothing)] = changes("data_source.delete")
    assert deleted_source == {
        "name": "minutes",
        "description": "",
        "classification": Clearance.INTERNAL,
        "leak_action": "block",
        "leak_share": 0.5,
    }
    assert "board minutes" not in all_audit_text()


# Refusals made through pages --------------------------------------------------------


def denial_fields(event: AuditEvent) -> tuple:
    """All that a page refusal and the API refusal of the same action share (not the path or method)."""
    return (
        event.actor_type,
        event.actor_user_id,
        event.actor_label,
        event.team_id,
        event.target_type,
        sorted(event.metadata),
        event.metadata["message"],
    )


def test_a_protected_label_move_refused_on_the_page_is_logged_like_the_api_refusal(team_a, client_for, page_client_for):
    engineer = team_a.members[Role.PROMPT_ENGINEER]
    prompt = prompts.prompt_create(caller=None, team=team_a.team, name="support", protected_labels=["production"])
    prompts.prompt_version_create(caller=None, prompt=prompt, messages=[{"role": "user", "content": "hi"}])

    page = page_client_for(engineer).post(
        reverse("prompts:label-deploy", args=[prompt.id]), {"label": "production", "version": "1"}
    )
    api = client_for(engineer).put(
        f"/api/v1/prompts/support/labels/production/?team={team_a.team.id}", {"version": 1}, format="json"
    )

    assert (page.status_code, api.status_code) == (403, 403)
    assert not prompt.labels.exists()
    page_event, api_event = AuditEvent.objects.filter(action=Action.ACCESS_DENIED).order_by("id")
    assert denial_fields(page_event) == denial_fields(api_event)
    assert "move the protected label 'production'" in page_event.metadata["message"]
    assert (page_event.metadata["path"], api_event.metadata["path"]) == (
        f"/prompts/{prompt.id}/labels/deploy/",
        "/api/v1/prompts/support/labels/production/",
    )


@pytest.mark.parametrize(
    ("role", "clearance"), [(Role.ADMIN, Clearance.INTERNAL), (Role.APPLICATION, Clearance.RESTRICTED)]
)
def test_a_key_escalation_refused_on_the_page_is_logged_like_the_api_refusal(
    team_a, client_for, page_client_for, role, clearance
):
    manager = team_a.members[Role.MANAGER]
    form = {"name": "escalate", "role": role, "clearance": clearance}
    body = {**form, "clearance": Clearance(clearance).label}

    page = page_client_for(manager).post(reverse("settings:key-create", args=[team_a.application.id]), form)
    api = client_for(manager).post(f"/api/v1/applications/{team_a.application.id}/keys/", body, format="json")

    assert (page.status_code, api.status_code) == (403, 403)
    assert not ApiKey.objects.filter(name="escalate").exists()
    page_event, api_event = AuditEvent.objects.filter(action=Action.ACCESS_DENIED).order_by("id")
    assert denial_fields(page_event) == denial_fields(api_event)
    assert (page_event.actor_type, page_event.actor_user_id, page_event.team_id) == ("user", manager.id, team_a.team.id)


def test_a_page_refusal_is_logged_once(team_a, page_client_for):
    viewer = team_a.members[Role.VIEWER]

    response = page_client_for(viewer).get("/compliance/events/")

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=Action.ACCESS_DENIED).count() == 1


def test_a_refusal_caught_without_a_403_is_not_a_denial(team_a, page_client_for):
    # The prompt list asks has_permission for each team; nothing is refused to the caller.
    response = page_client_for(team_a.members[Role.VIEWER]).get("/prompts/")

    assert response.status_code == 200
    assert AuditEvent.objects.filter(action=Action.ACCESS_DENIED).count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_page_refusal_served_over_asgi_is_logged(team_a):
    """Production serves pages through the ASGI handler: the middleware's async path."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    manager = team_a.members[Role.MANAGER]
    client = AsyncClient()
    client.force_login(manager)
    data = {"name": "escalate", "role": Role.ADMIN, "clearance": Clearance.INTERNAL}

    response = async_to_sync(client.post)(reverse("settings:key-create", args=[team_a.application.id]), data)

    assert response.status_code == 403
    [denied] = AuditEvent.objects.filter(action=Action.ACCESS_DENIED)
    assert (denied.actor_user_id, denied.team_id, denied.metadata["method"]) == (manager.id, team_a.team.id, "POST")
    assert "cannot give the role 'admin' to a key" in denied.metadata["message"]
