"""Password logins are throttled per account and per client address: a lockout refuses even the
right password with a 429 saying when to retry, expires by itself, and is an audit event."""

from __future__ import annotations

import datetime

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.hooks import AuditAction
from accounts.login_throttle import _keys
from accounts.models import Role
from accounts.tests.factories import UserFactory
from compliance.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # set by UserFactory


@pytest.fixture(autouse=True)
def limits(settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 8
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    settings.LOGIN_LOCKOUT_SECONDS = 900


def log_in(client: Client, username: str, password: str, address: str = "198.51.100.7"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def expire_lockouts() -> None:
    """What the lockout's expiry does: its cache entries time out (a test does not wait 15 minutes)."""
    cache.delete_many([_keys(scope, value)[1] for scope, value in (("account", "alice"), ("address", "198.51.100.7"))])


def test_an_account_is_locked_out_after_its_failures_even_with_the_right_password(team_a):
    alice = UserFactory.create(username="alice")
    team_a.team.memberships.create(user=alice, role=Role.VIEWER)
    client = Client()

    failures = [log_in(client, "alice", f"wrong-{attempt}") for attempt in range(5)]
    right = log_in(client, "alice", PASSWORD)

    assert [response.status_code for response in failures] == [200, 200, 200, 200, 429]
    assert right.status_code == 429
    assert 900 - 5 <= int(right["Retry-After"]) <= 901
    body = right.content.decode()
    assert "Too many failed logins for this account: try again after " in body
    assert "UTC (in 15 minutes)." in body
    assert "_auth_user_id" not in client.session
    lockout = AuditEvent.objects.get(action=AuditAction.LOCKOUT)
    assert (lockout.target_type, lockout.target_id, lockout.team_id) == ("auth.user", str(alice.pk), team_a.team.id)
    assert lockout.ip_address == "198.51.100.7"
    assert lockout.metadata["scope"] == "account"
    assert lockout.metadata["failures"] == 5
    locked_until = datetime.datetime.fromisoformat(lockout.metadata["locked_until"])
    assert 890 <= (locked_until - lockout.created_at).total_seconds() <= 901


def test_the_lockout_expires_and_the_right_password_then_works(db):
    UserFactory.create(username="alice")
    client = Client()
    for attempt in range(5):
        log_in(client, "alice", f"wrong-{attempt}")
    assert log_in(client, "alice", PASSWORD).status_code == 429

    expire_lockouts()
    response = log_in(client, "alice", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_a_success_clears_the_accounts_failures(db):
    UserFactory.create(username="alice")
    for attempt in range(4):
        log_in(Client(), "alice", f"wrong-{attempt}")
    assert log_in(Client(), "alice", PASSWORD).status_code == 302

    for attempt in range(4):  # from another address: the first one has 5 failures of its 8
        assert log_in(Client(), "alice", f"wrong-again-{attempt}", address="203.0.113.20").status_code == 200
    assert log_in(Client(), "alice", PASSWORD, address="203.0.113.20").status_code == 302


def test_an_address_is_locked_out_after_more_failures_across_accounts(db):
    UserFactory.create(username="alice")
    UserFactory.create(username="bob")
    client = Client()
    for attempt in range(4):
        log_in(client, "alice", f"wrong-{attempt}")
    for attempt in range(3):
        assert log_in(client, "bob", f"wrong-{attempt}").status_code == 200

    eighth = log_in(client, "carol", "wrong")
    bob_right = log_in(client, "bob", PASSWORD)
    bob_elsewhere = log_in(Client(), "bob", PASSWORD, address="203.0.113.9")

    assert eighth.status_code == 429
    assert bob_right.status_code == 429
    assert "Too many failed logins for your address: try again after " in bob_right.content.decode()
    assert bob_elsewhere.status_code == 302  # the account itself is not locked
    event = AuditEvent.objects.get(action=AuditAction.LOCKOUT)
    assert (event.target_type, event.target_id, event.team_id) == ("auth.address", "198.51.100.7", None)
    assert event.metadata["failures"] == 8


def test_the_admin_login_is_throttled_too(db):
    UserFactory.create(username="alice", is_staff=True)
    client = Client()
    for attempt in range(5):
        client.post("/admin/login/", {"username": "alice", "password": f"wrong-{attempt}"}, REMOTE_ADDR="198.51.100.7")

    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")

    assert response.status_code == 200
    assert "Too many failed logins for this account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_api_keys_and_sessions_are_not_throttled_by_login_failures(team_a, key_client_for, client_for):
    viewer = team_a.members[Role.VIEWER]
    for attempt in range(5):
        log_in(Client(), viewer.username, f"wrong-{attempt}", address="127.0.0.1")

    assert client_for(viewer).get("/api/v1/me").status_code == 200
    assert key_client_for(team_a.application).get("/api/v1/me").status_code == 200
