"""The unscoped reads the apps above accounts use (commands, tasks, costs' labels and alerts)."""

from __future__ import annotations

from accounts import selectors
from accounts.services import api_key_create
from accounts.tests.factories import MembershipFactory, TeamFactory, UserFactory
from accounts.types import Role


def test_team_of_id_or_name_takes_an_id_first_then_a_name(team_a, team_b):
    TeamFactory.create(name=str(team_b.team.id))

    assert selectors.team_of_id_or_name(value=str(team_a.team.id)) == team_a.team
    assert selectors.team_of_id_or_name(value="Team B") == team_b.team
    assert selectors.team_of_id_or_name(value=str(team_b.team.id)) == team_b.team  # the id wins over the name
    assert selectors.team_of_id_or_name(value="No such team") is None


def test_team_if_only_one(db):
    assert selectors.team_if_only_one() is None
    only = TeamFactory.create()
    assert selectors.team_if_only_one() == only
    TeamFactory.create()
    assert selectors.team_if_only_one() is None


def test_team_of_id_and_its_time_zone(team_a):
    team_a.team.time_zone = "Europe/Paris"
    team_a.team.save()

    assert selectors.team_of_id(team_id=team_a.team.id) == team_a.team
    assert selectors.team_time_zone(team_id=team_a.team.id) == "Europe/Paris"
    assert selectors.team_of_id(team_id=0) is None
    assert selectors.team_time_zone(team_id=0) is None


def test_team_manager_emails_are_the_managers_and_admins_with_an_address(team_a, team_b):
    no_address = UserFactory.create(email="")
    MembershipFactory.create(user=no_address, team=team_a.team, role=Role.ADMIN)

    emails = selectors.team_manager_emails(team_id=team_a.team.id)

    assert emails == sorted([team_a.members[Role.ADMIN].email, team_a.members[Role.MANAGER].email])


def test_names_of_ids_keep_to_the_given_teams(team_a, team_b):
    key_a, _ = api_key_create(caller=None, application=team_a.application, name="backend")
    key_b, _ = api_key_create(caller=None, application=team_b.application, name="other")
    application_ids = [team_a.application.id, team_b.application.id]

    assert selectors.team_names_of_ids(team_ids=[team_a.team.id, team_b.team.id]) == {
        team_a.team.id: "Team A",
        team_b.team.id: "Team B",
    }
    assert selectors.application_names_of_ids(application_ids=application_ids, team_ids=[team_a.team.id]) == {
        team_a.application.id: team_a.application.name
    }
    assert selectors.api_key_names_of_ids(key_ids=[key_a.id, key_b.id], team_ids=[team_a.team.id]) == {
        key_a.id: "backend"
    }


def test_membership_of_applications_and_keys_in_a_team(team_a, team_b):
    key_a, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    assert selectors.application_is_in_team(application_id=team_a.application.id, team_id=team_a.team.id)
    assert not selectors.application_is_in_team(application_id=team_a.application.id, team_id=team_b.team.id)
    assert selectors.api_key_is_in_team(key_id=key_a.id, team_id=team_a.team.id)
    assert not selectors.api_key_is_in_team(key_id=key_a.id, team_id=team_b.team.id)


def test_application_of_team_and_name(team_a, team_b):
    name = team_a.application.name

    assert selectors.application_of_team_and_name(team_name="Team A", name=name) == team_a.application
    assert selectors.application_of_team_and_name(team_name="Team B", name=name) is None
