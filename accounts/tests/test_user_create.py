"""Team admins create user accounts (API, command); audited; refusals change nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Membership, Role
from compliance.models import AuditEvent
from core.classification import Clearance
from core.testing import assert_openai_error, assert_refused

pytestmark = pytest.mark.django_db

User = get_user_model()


def test_a_team_admin_creates_a_user_with_a_generated_password_shown_once(team_a, client_for):
    admin = client_for(team_a.members[Role.ADMIN])

    response = admin.post(
        f"/api/v1/teams/{team_a.team.id}/users/",
        {"username": "grace", "email": "grace@example.com", "role": "reviewer", "clearance": "internal"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["username"], body["email"], body["role"], body["clearance"]) == (
        "grace",
        "grace@example.com",
        "reviewer",
        "internal",
    )
    assert response["Cache-Control"] == "no-store"
    assert authenticate(username="grace", password=body["password"]) is not None
    membership = Membership.objects.get(user__username="grace")
    assert (membership.team_id, membership.role, membership.clearance) == (
        team_a.team.id,
        Role.REVIEWER,
        Clearance.INTERNAL,
    )
    event = AuditEvent.objects.filter(action="user.create").get()
    assert event.after is not None
    assert body["password"] not in str(event.after)
    assert (event.after["username"], event.actor_user_id) == ("grace", team_a.members[Role.ADMIN].id)


def test_clearance_above_the_admin_own_is_refused_and_nothing_is_created(team_a, client_for):
    admin = client_for(team_a.members[Role.ADMIN])  # confidential clearance

    assert_refused(
        admin,
        "post",
        f"/api/v1/teams/{team_a.team.id}/users/",
        data={"username": "eve", "email": "eve@example.com", "role": "viewer", "clearance": "restricted"},
        status=403,
        unchanged=(User, Membership),
    )


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_only_team_admins_create_users(team_a, client_for, role):
    assert_refused(
        client_for(team_a.members[role]),
        "post",
        f"/api/v1/teams/{team_a.team.id}/users/",
        data={"username": "eve", "email": "eve@example.com"},
        status=403,
        unchanged=(User, Membership),
    )


def test_another_team_is_hidden(team_a, team_b, client_for):
    assert_refused(
        client_for(team_a.members[Role.ADMIN]),
        "post",
        f"/api/v1/teams/{team_b.team.id}/users/",
        data={"username": "eve", "email": "eve@example.com"},
        status=404,
        unchanged=(User, Membership),
    )


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"username": "bad name!", "email": "x@example.com"}, "username"),
        ({"username": "ok", "email": "not-an-email"}, "email"),
        ({"username": "ok", "email": "x@example.com", "password": "123"}, "password"),
        # A valid address longer than the 254-character column: PostgreSQL refused it (a 500).
        ({"username": "ok", "email": "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com"}, "email"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(team_a, client_for, data, param):
    response = assert_refused(
        client_for(team_a.members[Role.ADMIN]),
        "post",
        f"/api/v1/teams/{team_a.team.id}/users/",
        data=data,
        status=400,
        unchanged=(User, Membership),
    )
    assert_openai_error(response, 400, param=param)


def test_a_taken_username_is_a_conflict(team_a, client_for):
    taken = team_a.members[Role.VIEWER].username

    response = assert_refused(
        client_for(team_a.members[Role.ADMIN]),
        "post",
        f"/api/v1/teams/{team_a.team.id}/users/",
        data={"username": taken.upper(), "email": "x@example.com"},
        status=409,
        unchanged=(User, Membership),
    )
    assert_openai_error(response, 409, param="username")


def test_createuser_command_generates_and_prints_the_password_once(team_a):
    out, err = StringIO(), StringIO()

    call_command(
        "createuser",
        "--username=ada",
        "--email=ada@example.com",
        f"--team={team_a.team.name}",
        "--role=manager",
        "--clearance=confidential",
        stdout=out,
        stderr=err,
    )

    password = out.getvalue().strip()
    assert out.getvalue() == password + "\n"
    assert authenticate(username="ada", password=password) is not None
    membership = Membership.objects.get(user__username="ada")
    assert (membership.role, membership.clearance) == (Role.MANAGER, Clearance.CONFIDENTIAL)
    assert AuditEvent.objects.filter(action="user.create", actor_type="system").count() == 1


def test_createuser_command_reads_the_password_from_stdin(team_a, monkeypatch):
    monkeypatch.setattr("sys.stdin", StringIO("a-long-enough-passphrase-42\n"))
    out = StringIO()

    call_command(
        "createuser",
        "--username=lin",
        "--email=lin@example.com",
        f"--team={team_a.team.name}",
        "--password-stdin",
        stdout=out,
        stderr=StringIO(),
    )

    assert out.getvalue() == ""
    assert authenticate(username="lin", password="a-long-enough-passphrase-42") is not None


def test_createuser_command_refuses_an_unknown_team_and_creates_nothing(db):
    with pytest.raises(CommandError, match="No team named 'Nowhere'"):
        call_command("createuser", "--username=x", "--email=x@example.com", "--team=Nowhere", stdout=StringIO())
    assert User.objects.count() == 0
