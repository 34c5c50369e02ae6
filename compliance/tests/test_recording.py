"""What gets recorded: configuration changes with before/after, logins, denials, LLM calls, retention."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.caller import caller_for_user
from accounts.hooks import AuditAction
from accounts.models import ApiKey
from accounts.tests.factories import UserFactory
from accounts.types import Role
from compliance import chain, services
from compliance.audit import Action, audit_record, audit_record_calls, call_content_sha256
from compliance.models import ActorType, AuditEvent, RetentionPolicy
from observability.models import Call
from observability.tests.factories import CallFactory

pytestmark = pytest.mark.django_db


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_audit_record_keeps_actor_request_id_and_address(team_a, rf):
    admin = team_a.members[Role.ADMIN]
    request = rf.get("/anything", REMOTE_ADDR="2001:DB8::1")
    request.request_id = "req-12345678"

    event = audit_record(
        actor=caller_for_user(admin),
        action="thing.change",
        target_type="test.thing",
        target_id="42",
        team_id=team_a.team.id,
        before={"when": datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC), "amount": Decimal("1.50")},
        request=request,
    )
    event.refresh_from_db()

    assert (event.actor_type, event.actor_user_id, event.actor_label) == (
        ActorType.USER,
        admin.id,
        f"user {admin.username}",
    )
    assert (event.request_id, event.ip_address) == ("req-12345678", "2001:db8::1")
    assert event.before == {"when": "2025-01-02T00:00:00Z", "amount": "1.50"}
    assert event.sequence is None


def test_api_key_create_and_revoke_through_the_api_are_recorded(team_a, client_for):
    admin = team_a.members[Role.ADMIN]
    client = client_for(admin)
    url = f"/api/v1/applications/{team_a.application.id}/keys/"

    created = client.post(
        url, {"name": "ci", "role": "application"}, format="json", HTTP_X_REQUEST_ID="create-key-request-1"
    )
    client.post(f"{url}{created.json()['id']}/revoke/", format="json")

    [create] = events(AuditAction.API_KEY_CREATE)
    [revoke] = events(AuditAction.API_KEY_REVOKE)
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert (create.target_id, create.team_id, create.application_id) == (
        str(key.id),
        team_a.team.id,
        team_a.application.id,
    )
    assert create.after == {
        "name": "ci",
        "prefix": key.prefix,
        "role": "application",
        "clearance": "internal",
        "expires_at": None,
    }
    assert (create.request_id, create.ip_address, create.actor_user_id) == (
        "create-key-request-1",
        "127.0.0.1",
        admin.id,
    )
    assert revoke.before == {"revoked_at": None}
    assert revoke.after is not None
    assert revoke.after["revoked_at"] is not None


def test_membership_changes_are_recorded_with_before_and_after(team_a, client_for):
    newcomer = UserFactory.create()
    client = client_for(team_a.members[Role.ADMIN])
    members = f"/api/v1/teams/{team_a.team.id}/members/"

    client.post(members, {"username": newcomer.username, "role": "viewer", "clearance": "public"}, format="json")
    client.patch(f"{members}{newcomer.id}/", {"role": "reviewer", "clearance": "internal"}, format="json")
    client.delete(f"{members}{newcomer.id}/")

    [added] = events(AuditAction.MEMBERSHIP_ADD)
    [updated] = events(AuditAction.MEMBERSHIP_UPDATE)
    [removed] = events(AuditAction.MEMBERSHIP_REMOVE)
    assert added.after == {"user_id": newcomer.id, "role": "viewer", "clearance": "public"}
    assert (updated.before, updated.after) == (
        {"user_id": newcomer.id, "role": "viewer", "clearance": "public"},
        {"user_id": newcomer.id, "role": "reviewer", "clearance": "internal"},
    )
    assert (removed.before, removed.after, removed.team_id) == (updated.after, None, team_a.team.id)


def test_team_and_application_changes_are_recorded(team_a, client_for):
    operator = UserFactory.create(is_superuser=True)
    client = client_for(operator)

    team = client.post("/api/v1/teams/", {"name": "Audited"}, format="json").json()
    client.patch(f"/api/v1/teams/{team['id']}/", {"description": "new"}, format="json")
    application = client.post("/api/v1/applications/", {"team": team["id"], "name": "bot"}, format="json").json()
    client.patch(f"/api/v1/applications/{application['id']}/", {"name": "bot2"}, format="json")

    assert [(event.after or {}).get("name") for event in events(AuditAction.TEAM_CREATE)] == ["Audited"]
    [team_update] = events(AuditAction.TEAM_UPDATE)
    assert ((team_update.before or {})["description"], (team_update.after or {})["description"]) == ("", "new")
    [app_update] = events(AuditAction.APPLICATION_UPDATE)
    assert (app_update.before, app_update.after) == (
        {"name": "bot", "description": ""},
        {"name": "bot2", "description": ""},
    )
    assert app_update.application_id == application["id"]


def test_a_refused_change_records_the_denial_and_nothing_else(team_a, client_for):
    viewer = team_a.members[Role.VIEWER]

    response = client_for(viewer).post(
        f"/api/v1/applications/{team_a.application.id}/keys/", {"name": "x"}, format="json"
    )

    assert response.status_code == 403
    assert events(AuditAction.API_KEY_CREATE) == []
    [denied] = events(Action.ACCESS_DENIED)
    assert (denied.actor_user_id, denied.team_id) == (viewer.id, team_a.team.id)
    assert denied.metadata["path"] == f"/api/v1/applications/{team_a.application.id}/keys/"
    assert denied.metadata["method"] == "POST"
    assert "does not allow you to create API keys" in denied.metadata["message"]


def test_a_refused_page_records_the_denial(team_a, page_client_for):
    viewer = team_a.members[Role.VIEWER]

    response = page_client_for(viewer).get("/compliance/events/")

    assert response.status_code == 403
    [denied] = events(Action.ACCESS_DENIED)
    assert (denied.actor_user_id, denied.metadata["path"]) == (viewer.id, "/compliance/events/")


def test_cross_team_404_is_not_a_denial(team_a, team_b, client_for):
    client_for(team_a.members[Role.ADMIN]).get(f"/api/v1/applications/{team_b.application.id}/")

    assert events(Action.ACCESS_DENIED) == []


def test_logins_are_recorded_for_each_team_of_the_user(team_a, team_b):
    user = team_a.members[Role.VIEWER]
    team_b.team.memberships.create(user=user, role=Role.VIEWER)

    assert (
        Client().post("/login/", {"username": user.username, "password": "correct horse battery staple"}).status_code
        == 302
    )

    logins = events(Action.LOGIN)
    assert sorted(event.team_id or 0 for event in logins) == sorted([team_a.team.id, team_b.team.id])
    assert {(event.actor_user_id, event.ip_address) for event in logins} == {(user.id, "127.0.0.1")}


def test_failed_logins_are_recorded_without_the_password(team_a):
    user = team_a.members[Role.VIEWER]

    Client().post("/login/", {"username": user.username, "password": "wrong password"})
    Client().post("/login/", {"username": "nobody-at-all", "password": "secret-guess"})

    known, unknown = events(Action.LOGIN_FAILED)
    assert (known.team_id, known.target_id, known.metadata) == (
        team_a.team.id,
        str(user.id),
        {"username": user.username, "known_user": True},
    )
    assert (unknown.team_id, unknown.metadata) == (None, {"username": "nobody-at-all", "known_user": False})
    assert "secret-guess" not in str(AuditEvent.objects.values_list("metadata", "before", "after"))


def make_call(team, **fields) -> Call:
    defaults = {
        "request_model": "gpt-4o-mini",
        "request_messages": [{"role": "user", "content": "My card is 4111 1111 1111 1111"}],
        "response_text": "Noted.",
        "cost_usd": Decimal("0.00012"),
    }
    defaults.update(fields)
    return CallFactory.create(world=team, **defaults)


def test_llm_calls_are_recorded_in_one_bulk_insert_with_their_content_hash(team_a, django_assert_num_queries):
    calls = [make_call(team_a), make_call(team_a, response_text="Other.")]

    with django_assert_num_queries(1):
        audit_record_calls(calls=calls)

    recorded = events(Action.LLM_CALL)
    assert [event.target_id for event in recorded] == [str(call.id) for call in calls]
    assert [event.metadata["content_sha256"] for event in recorded] == [call_content_sha256(call) for call in calls]
    assert recorded[0].metadata["content_sha256"] != recorded[1].metadata["content_sha256"]
    assert {(event.team_id, event.application_id) for event in recorded} == {(team_a.team.id, team_a.application.id)}


def test_call_content_hash_changes_when_content_changes(team_a):
    call = make_call(team_a)
    original = call_content_sha256(call)

    call.response_text = "Tampered."

    assert call_content_sha256(call) != original
    assert call_content_sha256(Call.objects.get(pk=call.pk)) == original


def test_retention_purges_old_call_content_and_the_chain_still_verifies(team_a, team_b):
    old = make_call(team_a, created_at=timezone.now() - datetime.timedelta(days=40))
    recent = make_call(team_a)
    other_team_old = make_call(team_b, created_at=timezone.now() - datetime.timedelta(days=40))
    audit_record_calls(calls=[old, recent, other_team_old])
    old_hash = call_content_sha256(old)
    RetentionPolicy.objects.create(team=team_a.team, call_content_days=30)
    chain.seal_pending()
    chain.checkpoint_create()

    assert services.retention_purge() == 1
    assert services.retention_purge() == 0  # idempotent

    old.refresh_from_db()
    assert (old.request_messages, old.response_text) == ([], "")
    assert Call.objects.get(pk=recent.pk).response_text == "Noted."
    assert Call.objects.get(pk=other_team_old.pk).response_text == "Noted."
    assert AuditEvent.objects.get(target_id=str(old.id)).metadata["content_sha256"] == old_hash
    [purge] = events(Action.RETENTION_PURGE)
    assert (purge.team_id, purge.metadata["calls_purged"]) == (team_a.team.id, 1)
    chain.seal_pending()
    report = chain.verify_chain()
    assert report.is_intact, report.problems
    assert report.checkpoints_verified == 1
