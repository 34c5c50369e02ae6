"""Invitation links: a team admin invites (API or Settings), the invitee opens /invite/<token>/
without an account, picks a username and password and joins with the invited role and
clearance, once. Only a hash of the token is stored; every step is audited."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.keys import secret_hash
from accounts.models import Invitation, Membership, Role
from compliance.models import AuditEvent
from core.classification import Clearance
from core.testing import assert_hidden, assert_openai_error, assert_refused

pytestmark = pytest.mark.django_db

User = get_user_model()
EVERYTHING = (User, Membership, Invitation)
GOOD_PASSWORD = "plum-orbit-canyon-7341"


def invite(client, team, **data) -> dict:
    payload = {"email": "new@example.com", "role": "reviewer", "clearance": "internal", **data}
    response = client.post(f"/api/v1/teams/{team.id}/invitations/", payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def token_of(body: dict) -> str:
    match = re.fullmatch(r"http://testserver/invite/([A-Za-z0-9_-]{43})/", body["url"])
    assert match, body["url"]
    return match.group(1)


def accept(token: str, **data):
    form = {"username": "newbie", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD, **data}
    return Client().post(f"/invite/{token}/", form)


# Creating ---------------------------------------------------------------------------


def test_an_admin_creates_an_invitation_whose_link_is_returned_once_and_stored_only_as_a_hash(team_a, client_for):
    admin = team_a.members[Role.ADMIN]
    before = timezone.now()

    response = client_for(admin).post(
        f"/api/v1/teams/{team_a.team.id}/invitations/",
        {"email": "ada@example.com", "role": "manager", "clearance": "confidential"},
        format="json",
    )

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    token = token_of(body)
    assert (body["email"], body["role"], body["clearance"], body["state"], body["created_by"]) == (
        "ada@example.com",
        "manager",
        "confidential",
        "pending",
        admin.username,
    )
    invitation = Invitation.objects.get()
    assert invitation.token_hash == secret_hash(token)
    assert token not in str(list(Invitation.objects.values()))
    # The default expiry is seven days.
    assert before + datetime.timedelta(days=7) <= invitation.expires_at <= timezone.now() + datetime.timedelta(days=7)
    event = AuditEvent.objects.get(action="invitation.create")
    assert event.after is not None
    assert (event.actor_user_id, event.team_id, event.target_id) == (admin.id, team_a.team.id, str(invitation.id))
    assert (event.after["email"], event.after["role"], event.after["clearance"]) == (
        "ada@example.com",
        "manager",
        "confidential",
    )
    assert token not in str(event.after)
    assert token not in str(event.metadata)
    # Listed without the link.
    listed = client_for(admin).get(f"/api/v1/teams/{team_a.team.id}/invitations/").json()["results"]
    assert [(row["id"], row["state"]) for row in listed] == [(invitation.id, "pending")]
    assert "url" not in listed[0]


@pytest.mark.parametrize(("days", "accepted"), [(1, True), (30, True), (0, False), (31, False)])
def test_expiry_is_one_to_thirty_days(team_a, client_for, days, accepted):
    client = client_for(team_a.members[Role.ADMIN])
    data = {"email": "x@example.com", "expires_in_days": days}
    if accepted:
        before = timezone.now()
        invite(client, team_a.team, **data)
        invitation = Invitation.objects.get()
        # Bounded by the clock around the request, not by a tolerance.
        expiry = datetime.timedelta(days=days)
        assert before + expiry <= invitation.expires_at <= timezone.now() + expiry
    else:
        response = assert_refused(
            client, "post", f"/api/v1/teams/{team_a.team.id}/invitations/", data=data, status=400, unchanged=EVERYTHING
        )
        assert_openai_error(response, 400, param="expires_in_days")


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        # A valid address longer than the 254-character column: PostgreSQL refused it (a 500).
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com",
    ],
)
def test_an_email_that_is_no_address_or_too_long_is_a_400_and_nothing_changes(team_a, client_for, email):
    response = assert_refused(
        client_for(team_a.members[Role.ADMIN]),
        "post",
        f"/api/v1/teams/{team_a.team.id}/invitations/",
        data={"email": email},
        status=400,
        unchanged=EVERYTHING,
    )
    assert_openai_error(response, 400, param="email")


def test_clearance_above_the_admin_own_is_refused_and_nothing_changes(team_a, client_for):
    assert_refused(
        client_for(team_a.members[Role.ADMIN]),  # confidential
        "post",
        f"/api/v1/teams/{team_a.team.id}/invitations/",
        data={"email": "eve@example.com", "role": "viewer", "clearance": "restricted"},
        status=403,
        unchanged=EVERYTHING,
    )
    assert not AuditEvent.objects.filter(action="invitation.create").exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_only_team_admins_invite_and_list_invitations(team_a, client_for, role):
    client = client_for(team_a.members[role])
    url = f"/api/v1/teams/{team_a.team.id}/invitations/"

    assert_refused(client, "post", url, data={"email": "eve@example.com"}, status=403, unchanged=EVERYTHING)
    assert_refused(client, "get", url, status=403, unchanged=EVERYTHING)


def test_another_team_invitations_are_hidden(team_a, team_b, client_for):
    theirs = invite(client_for(team_b.members[Role.ADMIN]), team_b.team)
    client = client_for(team_a.members[Role.ADMIN])
    base = f"/api/v1/teams/{team_b.team.id}/invitations/"

    assert_hidden(client, "post", base, data={"email": "eve@example.com"}, unchanged=EVERYTHING)
    assert_hidden(client, "get", base, unchanged=EVERYTHING)
    assert_hidden(client, "delete", f"{base}{theirs['id']}/", unchanged=EVERYTHING)
    # Nor through their own team's path.
    assert_hidden(client, "delete", f"/api/v1/teams/{team_a.team.id}/invitations/{theirs['id']}/", unchanged=EVERYTHING)


def test_listing_invitations_takes_the_same_queries_for_one_or_many(team_a, client_for):
    client = client_for(team_a.members[Role.ADMIN])
    url = f"/api/v1/teams/{team_a.team.id}/invitations/"
    invite(client, team_a.team)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for index in range(5):
        invite(client, team_a.team, email=f"x{index}@example.com")
    with CaptureQueriesContext(connection) as six:
        assert len(client.get(url).json()["results"]) == 6

    assert len(six) == len(one)


# Accepting --------------------------------------------------------------------------


def test_the_invitee_joins_with_the_invited_role_and_clearance_and_the_link_works_once(team_a, client_for):
    token = token_of(invite(client_for(team_a.members[Role.ADMIN]), team_a.team, clearance="confidential"))

    page = Client().get(f"/invite/{token}/")  # no login needed
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert "Join Team A" in page.content.decode()

    invitee = Client()
    response = invitee.post(
        f"/invite/{token}/", {"username": "newbie", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD}
    )

    assert (response.status_code, response["Location"]) == (302, f"/settings/teams/{team_a.team.id}/")
    assert invitee.get(response["Location"]).status_code == 200  # logged in as the new member
    user = authenticate(username="newbie", password=GOOD_PASSWORD)
    assert user is not None
    assert user.email == "new@example.com"
    membership = Membership.objects.get(user=user)
    assert (membership.team_id, membership.role, membership.clearance) == (
        team_a.team.id,
        Role.REVIEWER,
        Clearance.CONFIDENTIAL,
    )
    invitation = Invitation.objects.get()
    assert (invitation.state, invitation.accepted_by_id) == ("accepted", user.id)
    event = AuditEvent.objects.get(action="invitation.accept")
    assert event.after is not None
    assert (event.actor_user_id, event.team_id, event.target_id) == (user.id, team_a.team.id, str(invitation.id))
    assert (event.after["username"], event.after["role"]) == ("newbie", "reviewer")

    # Used once: the link now says so, and a second account cannot be made with it.
    again = Client().get(f"/invite/{token}/")
    assert again.status_code == 410
    assert "already used" in again.content.decode()
    before = list(User.objects.values_list("id", flat=True))
    second = accept(token, username="second")
    assert second.status_code == 410
    assert list(User.objects.values_list("id", flat=True)) == before


def assert_link_refused(token: str, reason: str) -> str:
    """The invitation's page is a 410 saying `reason`, and accepting it is a 410 that creates
    nothing. Returns the page."""
    page = Client().get(f"/invite/{token}/")
    assert page.status_code == 410
    assert reason in page.content.decode()
    assert_refused(
        Client(),
        "post",
        f"/invite/{token}/",
        data={"username": "late", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD},
        status=410,
        unchanged=EVERYTHING,
    )
    return page.content.decode()


def test_an_expired_link_is_refused_and_creates_nothing(team_a, client_for):
    token = token_of(invite(client_for(team_a.members[Role.ADMIN]), team_a.team))
    Invitation.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    page = assert_link_refused(token, "expired")
    assert "Team A" not in page


def test_a_revoked_link_is_refused_and_revoking_is_audited(team_a, client_for):
    admin = client_for(team_a.members[Role.ADMIN])
    created = invite(admin, team_a.team)
    url = f"/api/v1/teams/{team_a.team.id}/invitations/{created['id']}/"

    response = admin.delete(url)

    assert response.status_code == 200
    assert response.json()["state"] == "revoked"
    event = AuditEvent.objects.get(action="invitation.revoke")
    assert (event.actor_user_id, event.target_id) == (team_a.members[Role.ADMIN].id, str(created["id"]))
    assert_refused(admin, "delete", url, status=409, unchanged=EVERYTHING, code="invitation_revoked")
    assert_link_refused(token_of(created), "withdrawn")


def test_the_accept_form_cannot_raise_the_role_clearance_or_team(team_a, team_b, client_for):
    # given a viewer invitation of team A with public clearance
    token = token_of(invite(client_for(team_a.members[Role.ADMIN]), team_a.team, role="viewer", clearance="public"))

    # when the invitee adds fields asking for more, and for team B
    response = accept(token, role="admin", clearance=Clearance.RESTRICTED, team=team_b.team.id, team_id=team_b.team.id)

    # then they get exactly what the invitation says
    assert response.status_code == 302
    memberships = list(Membership.objects.filter(user__username="newbie").values_list("team_id", "role", "clearance"))
    assert memberships == [(team_a.team.id, Role.VIEWER, Clearance.PUBLIC)]


def test_a_link_of_another_team_grants_only_that_team(team_a, team_b, client_for):
    # An admin of team B invites; the link joins team B only, whoever opens it.
    token = token_of(invite(client_for(team_b.members[Role.ADMIN]), team_b.team, role="viewer"))
    as_team_a_member = Client()
    as_team_a_member.force_login(team_a.members[Role.VIEWER])

    response = as_team_a_member.post(
        f"/invite/{token}/", {"username": "newbie", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD}
    )

    assert response.status_code == 302
    assert list(Membership.objects.filter(user__username="newbie").values_list("team_id", "role")) == [
        (team_b.team.id, Role.VIEWER)
    ]
    # The existing member's own rights did not change.
    assert list(Membership.objects.filter(user=team_a.members[Role.VIEWER]).values_list("team_id", "role")) == [
        (team_a.team.id, Role.VIEWER)
    ]


@pytest.mark.parametrize("token", ["not-a-token", "A" * 43, "x" * 500])
def test_a_bad_token_reveals_nothing_and_creates_nothing(team_a, client_for, token):
    invite(client_for(team_a.members[Role.ADMIN]), team_a.team, email="secret-person@example.com")

    page = Client().get(f"/invite/{token}/")
    posted = assert_refused(
        Client(),
        "post",
        f"/invite/{token}/",
        data={"username": "eve", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD},
        status=404,
        unchanged=EVERYTHING,
    )

    for response in (page, posted):
        assert response.status_code == 404
        body = response.content.decode()
        assert "not valid" in body
        for secret in ("Team A", "secret-person", "reviewer", "expired", "already used", '<form class="stacked"'):
            assert secret not in body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"password1": "123", "password2": "123"}, "This password is too short"),
        ({"password1": "password123", "password2": "password123"}, "This password is too common"),
        ({"password2": "something-else-9876"}, "The two passwords differ"),
        ({"username": "bad name!"}, "Enter a valid username"),
    ],
)
def test_the_password_validators_apply_and_a_refusal_keeps_the_link_usable(team_a, client_for, data, message):
    token = token_of(invite(client_for(team_a.members[Role.ADMIN]), team_a.team))

    form = {"username": "newbie", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD, **data}

    response = assert_refused(Client(), "post", f"/invite/{token}/", data=form, status=400, unchanged=EVERYTHING)

    assert message in response.content.decode()
    assert accept(token).status_code == 302


def test_a_taken_username_is_shown_on_the_form(team_a, client_for):
    token = token_of(invite(client_for(team_a.members[Role.ADMIN]), team_a.team))

    response = assert_refused(
        Client(),
        "post",
        f"/invite/{token}/",
        data={
            "username": team_a.members[Role.VIEWER].username.upper(),
            "password1": GOOD_PASSWORD,
            "password2": GOOD_PASSWORD,
        },
        status=409,
        unchanged=EVERYTHING,
    )

    assert "is taken; pick another" in response.content.decode()


# Settings page ------------------------------------------------------------------------


def test_settings_create_lists_and_revokes_invitations(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])
    htmx = {"HX-Request": "true"}

    created = client.post(
        f"/settings/teams/{team_a.team.id}/invitations/create/",
        {"email": "ada@example.com", "role": "viewer", "clearance": Clearance.INTERNAL, "expires_in_days": 3},
        headers=htmx,
    )

    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    body = created.content.decode()
    shown = re.search(r"http://testserver/invite/([A-Za-z0-9_-]{43})/", body)
    assert shown is not None
    token = shown.group(1)
    invitation = Invitation.objects.get()
    assert invitation.token_hash == secret_hash(token)
    assert f'<tr id="invitation-{invitation.id}" class="new">' in body
    page = client.get(f"/settings/teams/{team_a.team.id}/").content.decode()
    assert token not in page
    assert "ada@example.com" in page
    assert 'class="badge status-pending"' in page

    revoked = client.post(f"/settings/teams/{team_a.team.id}/invitations/{invitation.id}/revoke/", headers=htmx)

    assert revoked.status_code == 200
    assert "Revoked the invitation of ada@example.com" in revoked.content.decode()
    invitation.refresh_from_db()
    assert invitation.state == "revoked"
    assert Client().get(f"/invite/{token}/").status_code == 410


def test_settings_refuses_a_clearance_above_the_admin_own_and_changes_nothing(team_a, page_client_for):
    response = assert_refused(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        f"/settings/teams/{team_a.team.id}/invitations/create/",
        data={"email": "eve@example.com", "role": "viewer", "clearance": Clearance.RESTRICTED, "expires_in_days": 7},
        status=403,
        unchanged=EVERYTHING,
    )
    assert "above your own" in response.content.decode()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_settings_refuses_non_admins(team_a, page_client_for, client_for, role):
    invitation_id = invite(client_for(team_a.members[Role.ADMIN]), team_a.team)["id"]
    client = page_client_for(team_a.members[role])

    assert_refused(
        client,
        "post",
        f"/settings/teams/{team_a.team.id}/invitations/create/",
        data={"email": "eve@example.com", "role": "viewer", "clearance": 0, "expires_in_days": 7},
        status=403,
        unchanged=EVERYTHING,
    )
    assert_refused(
        client,
        "post",
        f"/settings/teams/{team_a.team.id}/invitations/{invitation_id}/revoke/",
        status=403,
        unchanged=EVERYTHING,
    )
