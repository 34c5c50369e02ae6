"""Settings: a team admin creates a user account from the team page, over accounts.services.user_create."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import authenticate, get_user_model

from accounts.models import Membership, Role
from compliance.models import AuditEvent
from core.classification import Clearance
from core.testing import assert_refused

pytestmark = pytest.mark.django_db

User = get_user_model()
HTMX = {"HX-Request": "true"}


def url(team) -> str:
    return f"/settings/teams/{team.id}/users/create/"


def test_a_team_admin_creates_a_user_and_sees_the_generated_password_once(team_a, page_client_for):
    admin = team_a.members[Role.ADMIN]
    client = page_client_for(admin)

    response = client.post(
        url(team_a.team),
        {"username": "grace", "email": "grace@example.com", "role": "reviewer", "clearance": Clearance.INTERNAL},
        headers=HTMX,
    )

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    shown = re.search(r'<code id="new-user-password" class="secret" tabindex="0">([^<]+)</code>', body)
    assert shown is not None
    password = shown.group(1)
    assert authenticate(username="grace", password=password) is not None
    assert '<tr id="member-' in body
    assert ">grace<" in body
    membership = Membership.objects.get(user__username="grace")
    assert (membership.team_id, membership.role, membership.clearance) == (
        team_a.team.id,
        Role.REVIEWER,
        Clearance.INTERNAL,
    )
    user = User.objects.get(username="grace")
    assert user.email == "grace@example.com"
    event = AuditEvent.objects.get(action="user.create")
    assert event.after is not None
    assert (event.actor_user_id, event.team_id, event.after["username"]) == (admin.id, team_a.team.id, "grace")
    assert password not in str(event.after)
    # The team page shown afterwards does not show it again.
    assert password not in client.get(f"/settings/teams/{team_a.team.id}/").content.decode()


def test_a_plain_form_post_shows_the_password_on_the_result_page(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.ADMIN]).post(
        url(team_a.team), {"username": "lin", "email": "lin@example.com", "role": "viewer", "clearance": 0}
    )

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    assert "<html" in response.content.decode()
    assert 'id="new-user-password"' in response.content.decode()


def test_the_form_offers_only_clearances_up_to_the_admin_own(team_a, page_client_for):
    # given an admin with confidential clearance
    page = page_client_for(team_a.members[Role.ADMIN]).get(f"/settings/teams/{team_a.team.id}/").content.decode()

    form = page[page.index('id="user-create-heading"') :]
    form = form[: form.index("</form>")]
    clearance_select = form[form.index('name="clearance"') : form.index("</select>", form.index('name="clearance"'))]
    assert re.findall(r'<option value="(\d+)"', clearance_select) == ["0", "10", "20"]


def test_a_forged_clearance_above_the_admin_own_is_refused_logged_and_changes_nothing(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])  # confidential

    response = assert_refused(
        client,
        "post",
        url(team_a.team),
        data={"username": "eve", "email": "eve@example.com", "role": "viewer", "clearance": Clearance.RESTRICTED},
        status=403,
        unchanged=(User, Membership),
    )

    assert "above your own" in response.content.decode()
    assert AuditEvent.objects.filter(action="access.denied").count() == 1
    assert not AuditEvent.objects.filter(action="user.create").exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER, Role.COMPLIANCE_OFFICER])
def test_non_admins_are_refused_and_not_offered_the_form(team_a, page_client_for, role):
    client = page_client_for(team_a.members[role])

    assert_refused(
        client,
        "post",
        url(team_a.team),
        data={"username": "eve", "email": "eve@example.com", "role": "viewer", "clearance": 0},
        status=403,
        unchanged=(User, Membership),
    )
    page = client.get(f"/settings/teams/{team_a.team.id}/").content.decode()
    assert "Create a user" not in page
    assert 'id="invitations"' not in page


def test_another_team_is_hidden(team_a, team_b, page_client_for):
    assert_refused(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        url(team_b.team),
        data={"username": "eve", "email": "eve@example.com", "role": "viewer", "clearance": 0},
        status=404,
        unchanged=(User, Membership),
    )


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"username": "ok", "email": "not-an-email", "role": "viewer", "clearance": 0}, 400, "Enter a valid email"),
        (
            {"username": "bad name!", "email": "x@example.com", "role": "viewer", "clearance": 0},
            400,
            "Enter a valid username",
        ),
        ({"username": "TAKEN", "email": "x@example.com", "role": "viewer", "clearance": 0}, 409, "already exists"),
    ],
)
def test_bad_input_is_shown_inline_and_changes_nothing(team_a, page_client_for, data, status, message):
    if data["username"] == "TAKEN":
        data = {**data, "username": team_a.members[Role.VIEWER].username.upper()}

    response = assert_refused(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        url(team_a.team),
        data=data,
        status=status,
        unchanged=(User, Membership),
    )

    body = response.content.decode()
    assert message in body
    assert 'id="new-user-password"' not in body
    assert '<section id="members"' in body  # the section, with the form and its errors
