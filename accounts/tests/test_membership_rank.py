"""Nobody changes or removes a member ranked above them (role or clearance), through the API
or the settings pages; a refused change leaves nothing changed (its refusal is audited as a denial)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Application, Membership, Role, Team
from accounts.tests.factories import MembershipFactory, UserFactory
from compliance.models import AuditEvent
from core.classification import Clearance
from core.testing import assert_refused

pytestmark = pytest.mark.django_db

UNCHANGED = (Team, Membership, Application, AuditEvent.objects.exclude(action="access.denied"))
HTMX = {"HX-Request": "true"}


@pytest.fixture
def admins(team_a):
    """An admin with internal clearance and an admin with restricted clearance, in team A."""
    internal_admin = UserFactory.create(username="internal-admin")
    MembershipFactory.create(user=internal_admin, team=team_a.team, role=Role.ADMIN, clearance=Clearance.INTERNAL)
    restricted_admin = UserFactory.create(username="restricted-admin")
    MembershipFactory.create(user=restricted_admin, team=team_a.team, role=Role.ADMIN, clearance=Clearance.RESTRICTED)
    return internal_admin, restricted_admin


def test_an_admin_cannot_demote_an_admin_of_higher_clearance_through_the_api(team_a, admins, client_for):
    internal_admin, restricted_admin = admins

    response = assert_refused(
        client_for(internal_admin),
        "patch",
        f"/api/v1/teams/{team_a.team.id}/members/{restricted_admin.id}/",
        data={"role": "viewer", "clearance": "public"},
        status=403,
        unchanged=UNCHANGED,
    )

    assert response.json()["error"]["message"] == (
        "You cannot change a member whose clearance ('restricted') is above your own ('internal')."
    )


def test_an_admin_cannot_lower_only_the_clearance_of_a_member_above_them(team_a, admins, client_for):
    internal_admin, restricted_admin = admins

    assert_refused(
        client_for(internal_admin),
        "patch",
        f"/api/v1/teams/{team_a.team.id}/members/{restricted_admin.id}/",
        data={"clearance": "internal"},
        status=403,
        unchanged=UNCHANGED,
    )


def test_an_admin_cannot_remove_a_member_of_higher_clearance_through_the_api(team_a, admins, client_for):
    internal_admin, restricted_admin = admins

    response = assert_refused(
        client_for(internal_admin),
        "delete",
        f"/api/v1/teams/{team_a.team.id}/members/{restricted_admin.id}/",
        status=403,
        unchanged=UNCHANGED,
    )

    assert response.json()["error"]["message"] == (
        "You cannot remove a member whose clearance ('restricted') is above your own ('internal')."
    )


def test_an_admin_cannot_demote_or_remove_a_member_above_them_through_the_settings_page(
    team_a, admins, page_client_for
):
    internal_admin, restricted_admin = admins
    client = page_client_for(internal_admin)

    demoted = assert_refused(
        client,
        "post",
        reverse("settings:member-update", args=[team_a.team.id, restricted_admin.id]),
        data={"role": Role.VIEWER, "clearance": Clearance.PUBLIC},
        status=403,
        unchanged=UNCHANGED,
    )
    removed = assert_refused(
        client,
        "post",
        reverse("settings:member-remove", args=[team_a.team.id, restricted_admin.id]),
        data={},
        status=403,
        unchanged=UNCHANGED,
    )

    assert "Could not change restricted-admin: You cannot change a member whose clearance" in demoted.content.decode()
    assert "Could not remove restricted-admin: You cannot remove a member whose clearance" in removed.content.decode()


def test_an_admin_of_equal_or_higher_clearance_still_changes_and_removes_members(team_a, admins, client_for):
    internal_admin, restricted_admin = admins
    base = f"/api/v1/teams/{team_a.team.id}/members/"
    client = client_for(restricted_admin)

    demoted = client.patch(f"{base}{internal_admin.id}/", {"role": "viewer", "clearance": "public"}, format="json")
    removed = client.delete(f"{base}{team_a.members[Role.VIEWER].id}/")

    assert demoted.status_code == 200, demoted.content
    membership = Membership.objects.get(user=internal_admin, team=team_a.team)
    assert (membership.role, membership.clearance) == (Role.VIEWER, Clearance.PUBLIC)
    assert removed.status_code == 204
    assert not Membership.objects.filter(user=team_a.members[Role.VIEWER], team=team_a.team).exists()
