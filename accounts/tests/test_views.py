"""The settings pages: teams, members, applications and API keys, with their access rules,
plus login, logout and the placeholder areas."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone

from accounts.caller import caller_for_user
from accounts.invitations import invitation_create
from accounts.keys import secret_hash
from accounts.models import ApiKey, Application, Membership, Role, Team
from accounts.services import api_key_create
from accounts.tests.factories import ApplicationFactory, MembershipFactory, UserFactory
from controlplane.navigation import AREAS
from core.classification import Clearance
from core.testing import assert_hidden, assert_refused, snapshot

pytestmark = pytest.mark.django_db

EVERYTHING = (Team, Membership, Application, ApiKey)
HTMX = {"HX-Request": "true"}
PASSWORD = "correct horse battery staple"  # set by UserFactory


def text(response) -> str:
    return response.content.decode()


def is_full_page(response) -> bool:
    return "<html" in text(response)


@pytest.fixture
def operator(db):
    user = UserFactory.create()
    user.user_permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="add_team"))
    return user


# /settings/: teams and applications ---------------------------------------------------


def test_team_list_shows_your_teams_with_role_clearance_and_member_count(team_a, team_b, page_client_for):
    # given a manager of team A
    client = page_client_for(team_a.members[Role.MANAGER])

    # when they open the settings page
    response = client.get(reverse("settings:teams"))

    # then they see team A with their role, clearance and its six members, and nothing of team B
    assert response.status_code == 200
    body = text(response)
    assert f'<a href="/settings/teams/{team_a.team.id}/">Team A</a>' in body
    assert "<td>Manager</td>" in body
    assert "<td>confidential</td>" in body
    assert "<td>6</td>" in body
    assert f'href="/settings/applications/{team_a.application.id}/"' in body
    assert "Team B" not in body
    assert f'href="/settings/applications/{team_b.application.id}/"' not in body


def test_team_list_offers_team_creation_to_operators_only(team_a, operator, page_client_for):
    admin_page = text(page_client_for(team_a.members[Role.ADMIN]).get(reverse("settings:teams")))
    operator_page = text(page_client_for(operator).get(reverse("settings:teams")))

    assert "Create a team" not in admin_page
    assert "Create a team" in operator_page
    assert 'hx-post="/settings/teams/create/"' in operator_page


def test_team_list_offers_application_creation_in_teams_where_you_may_add_them(team_a, page_client_for):
    viewer_page = text(page_client_for(team_a.members[Role.VIEWER]).get(reverse("settings:teams")))
    manager_page = text(page_client_for(team_a.members[Role.MANAGER]).get(reverse("settings:teams")))

    assert "Create an application" not in viewer_page
    assert "Create an application" in manager_page
    assert f'<option value="{team_a.team.id}">Team A</option>' in manager_page


@pytest.mark.parametrize(
    ("role", "route", "args", "sections"),
    [
        pytest.param(Role.VIEWER, "settings:teams", lambda a: [], ['id="teams"', 'id="applications"'], id="team list"),
        pytest.param(Role.VIEWER, "settings:team", lambda a: [a.team.id], ['id="members"'], id="team"),
        pytest.param(
            Role.MANAGER, "settings:application", lambda a: [a.application.id], ['id="api-keys"'], id="application"
        ),
    ],
)
def test_settings_pages_are_the_full_page_normally_and_a_partial_for_htmx(
    team_a, page_client_for, role, route, args, sections
):
    client = page_client_for(team_a.members[role])
    url = reverse(route, args=args(team_a))

    full = client.get(url)
    partial = client.get(url, headers=HTMX)

    assert full.status_code == partial.status_code == 200
    assert is_full_page(full)
    assert not is_full_page(partial)
    for section in sections:
        assert section in text(partial)


def test_team_list_queries_do_not_grow_with_rows(make_team, page_client_for, django_assert_max_num_queries):
    # given a user in ten teams with four applications each
    user = UserFactory.create()
    for index in range(10):
        world = make_team(f"Busy {index}")
        MembershipFactory(user=user, team=world.team, role=Role.MANAGER)
        ApplicationFactory.create_batch(3, team=world.team)
    client = page_client_for(user)

    # when they open the settings page, then the query count is bounded whatever the rows:
    # session, user, grants, teams, the two operator-permission lookups, applications
    with django_assert_max_num_queries(8):  # + the navigation's unread-notifications count
        response = client.get(reverse("settings:teams"))

    assert response.status_code == 200
    assert text(response).count('href="/settings/applications/') == 40


def test_settings_pages_require_login(team_a):
    client = Client()

    for url in (
        reverse("settings:teams"),
        reverse("settings:team", args=[team_a.team.id]),
        reverse("settings:application", args=[team_a.application.id]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"


def test_form_endpoints_accept_only_post(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])

    response = client.get(reverse("settings:team-create"))

    assert response.status_code == 405


# Team creation ------------------------------------------------------------------------


def test_operator_creates_a_team_with_htmx_and_gets_the_teams_section(operator, page_client_for):
    # given an operator
    client = page_client_for(operator)

    # when they create a team through the htmx form
    response = client.post(
        reverse("settings:team-create"),
        {"name": "Search", "description": "Ranking work", "time_zone": "Europe/Paris"},
        headers=HTMX,
    )

    # then the team exists as asked, they are its admin, and the section lists it
    assert response.status_code == 200
    team = Team.objects.get()
    assert (team.name, team.description, team.time_zone) == ("Search", "Ranking work", "Europe/Paris")
    assert list(Membership.objects.values_list("user_id", "team_id", "role", "clearance")) == [
        (operator.id, team.id, Role.ADMIN, Clearance.RESTRICTED)
    ]
    body = text(response)
    assert not is_full_page(response)
    assert "Created team Search; you are its admin." in body
    assert f'<a href="/settings/teams/{team.id}/">Search</a>' in body
    # the applications section is refreshed out of band, now offering the new team
    assert 'hx-swap-oob="true"' in body
    assert f'<option value="{team.id}">Search</option>' in body


def test_operator_creates_a_team_with_a_plain_form_and_is_redirected(operator, page_client_for):
    client = page_client_for(operator)

    response = client.post(reverse("settings:team-create"), {"name": "Search", "time_zone": "UTC"})

    assert response.status_code == 302
    assert response["Location"] == reverse("settings:teams")
    assert Team.objects.filter(name="Search").count() == 1
    assert "Created team Search" in text(client.get(response["Location"]))


def test_a_team_admin_who_is_no_operator_cannot_create_teams(team_a, page_client_for):
    response = assert_refused(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        reverse("settings:team-create"),
        data={"name": "Rogue", "time_zone": "UTC"},
        status=403,
        unchanged=EVERYTHING,
    )

    assert "Only operators" in text(response)


def test_invalid_htmx_post_returns_the_section_with_errors_not_the_page(operator, page_client_for):
    response = page_client_for(operator).post(
        reverse("settings:team-create"), {"name": "", "time_zone": "UTC"}, headers=HTMX
    )

    assert response.status_code == 400
    assert not is_full_page(response)
    assert text(response).lstrip().startswith('<section id="teams"')


# Application creation -----------------------------------------------------------------


def test_manager_creates_an_application(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.MANAGER])

    response = client.post(
        reverse("settings:application-create"),
        {"team": team_a.team.id, "name": "chatbot", "description": "Support bot"},
        headers=HTMX,
    )

    assert response.status_code == 200
    created = Application.objects.exclude(pk=team_a.application.pk).get()
    assert (created.team_id, created.name, created.description) == (team_a.team.id, "chatbot", "Support bot")
    assert not is_full_page(response)
    assert f'href="/settings/applications/{created.id}/"' in text(response)


# A viewer of the team: every form that changes it is a 403 saying why, and changes nothing.
VIEWERS_REFUSALS = [
    pytest.param(
        "settings:application-create",
        lambda a: [],
        lambda a: {"team": a.team.id, "name": "chatbot"},
        lambda a: "Your role (viewer) does not allow you to create applications",
        id="application create",
    ),
    pytest.param(
        "settings:team-members-add",
        lambda a: [a.team.id],
        lambda a: {"username": "newcomer", "role": Role.VIEWER, "clearance": Clearance.INTERNAL},
        lambda a: "does not allow you to add members",
        id="member add",
    ),
    pytest.param(
        "settings:member-update",
        lambda a: [a.team.id, a.members[Role.REVIEWER].id],
        lambda a: {"role": Role.ADMIN, "clearance": Clearance.RESTRICTED},
        lambda a: f"Could not change {a.members[Role.REVIEWER].username}: Your role (viewer)",
        id="member update",
    ),
    pytest.param(
        "settings:member-remove",
        lambda a: [a.team.id, a.members[Role.REVIEWER].id],
        lambda a: None,
        lambda a: "does not allow you to remove members",
        id="member remove",
    ),
    pytest.param(
        "settings:application-update",
        lambda a: [a.application.id],
        lambda a: {"name": "hijacked"},
        lambda a: "Your role (viewer)",
        id="application update",
    ),
    pytest.param(
        "settings:key-create",
        lambda a: [a.application.id],
        lambda a: {"name": "backend", "role": Role.APPLICATION, "clearance": Clearance.INTERNAL},
        lambda a: "does not allow you to create API keys",
        id="key create",
    ),
]


@pytest.mark.parametrize(("route", "args", "data", "message"), VIEWERS_REFUSALS)
def test_a_viewer_cannot_change_the_team_or_its_applications(team_a, page_client_for, route, args, data, message):
    UserFactory.create(username="newcomer")  # someone to add, so that only the role can refuse

    response = assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        reverse(route, args=args(team_a)),
        data=data(team_a),
        status=403,
        unchanged=EVERYTHING,
    )

    assert message(team_a) in text(response)
    assert "Copy it now" not in text(response)


# Another team's admin: every page and form of team A is a 404 that changes nothing.
ANOTHER_TEAMS_PAGES = [
    pytest.param("get", "settings:team", lambda a: [a.team.id], lambda a: None, id="team page"),
    pytest.param("get", "settings:application", lambda a: [a.application.id], lambda a: None, id="application page"),
    pytest.param(
        "post",
        "settings:application-create",
        lambda a: [],
        lambda a: {"team": a.team.id, "name": "chatbot"},
        id="application create",
    ),
    pytest.param(
        "post",
        "settings:team-update",
        lambda a: [a.team.id],
        lambda a: {"name": "Hijacked", "time_zone": "UTC"},
        id="team update",
    ),
    pytest.param(
        "post",
        "settings:team-members-add",
        lambda a: [a.team.id],
        lambda a: {"username": "newcomer", "role": Role.VIEWER, "clearance": Clearance.INTERNAL},
        id="member add",
    ),
    pytest.param(
        "post",
        "settings:member-update",
        lambda a: [a.team.id, a.members[Role.VIEWER].id],
        lambda a: {"role": Role.ADMIN, "clearance": Clearance.RESTRICTED},
        id="member update",
    ),
    pytest.param(
        "post",
        "settings:member-remove",
        lambda a: [a.team.id, a.members[Role.VIEWER].id],
        lambda a: None,
        id="member remove",
    ),
    pytest.param(
        "post",
        "settings:application-update",
        lambda a: [a.application.id],
        lambda a: {"name": "hijacked"},
        id="application update",
    ),
    pytest.param(
        "post",
        "settings:key-create",
        lambda a: [a.application.id],
        lambda a: {"name": "backend", "role": Role.APPLICATION, "clearance": Clearance.INTERNAL},
        id="key create",
    ),
]


@pytest.mark.parametrize(("method", "route", "args", "data"), ANOTHER_TEAMS_PAGES)
def test_another_teams_pages_and_forms_are_404(team_a, team_b, page_client_for, method, route, args, data):
    UserFactory.create(username="newcomer")  # someone to add, so that only the team can refuse

    assert_hidden(
        page_client_for(team_b.members[Role.ADMIN]),
        method,
        reverse(route, args=args(team_a)),
        data=data(team_a),
        unchanged=EVERYTHING,
    )


# Input a form refuses, and changes a rule refuses: a 400 or a 409 that says why and changes nothing.
REFUSED_CHANGES = [
    pytest.param(
        "operator",
        "settings:team-create",
        lambda a: [],
        lambda a: {"name": "", "time_zone": "Mars/Olympus"},
        400,
        lambda a: ["This field is required.", "is not an IANA time zone", 'aria-invalid="true"'],
        id="team create: invalid input",
    ),
    pytest.param(
        "operator",
        "settings:team-create",
        lambda a: [],
        lambda a: {"name": "team a", "time_zone": "UTC"},
        409,
        lambda a: ["A team named &#x27;team a&#x27; already exists"],
        id="team create: a taken name",
    ),
    pytest.param(
        Role.MANAGER,
        "settings:application-create",
        lambda a: [],
        lambda a: {"team": "not-a-number", "name": ""},
        400,
        lambda a: ["Enter a whole number.", "This field is required."],
        id="application create: invalid input",
    ),
    pytest.param(
        Role.MANAGER,
        "settings:application-create",
        lambda a: [],
        lambda a: {"team": a.team.id, "name": a.application.name},
        409,
        lambda a: ["Team A already has an application named"],
        id="application create: a taken name",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:team-update",
        lambda a: [a.team.id],
        lambda a: {"name": "Team A", "time_zone": "Nowhere"},
        400,
        lambda a: ["is not an IANA time zone"],
        id="team update: invalid input",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:team-update",
        lambda a: [a.team.id],
        lambda a: {"name": "Team B", "time_zone": "UTC"},
        409,
        lambda a: ["A team named &#x27;Team B&#x27; already exists", '<h1 id="team-heading">Team A</h1>'],
        id="team update: a taken name",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:team-members-add",
        lambda a: [a.team.id],
        lambda a: {"username": "ghost", "role": Role.VIEWER, "clearance": Clearance.INTERNAL},
        400,
        lambda a: ["No user named &#x27;ghost&#x27; exists"],
        id="member add: an unknown username",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:team-members-add",
        lambda a: [a.team.id],
        lambda a: {"username": a.members[Role.VIEWER].username, "role": Role.VIEWER, "clearance": Clearance.INTERNAL},
        409,
        lambda a: ["is already a member of Team A"],
        id="member add: an existing member",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:member-update",
        lambda a: [a.team.id, a.members[Role.ADMIN].id],
        lambda a: {"role": Role.VIEWER, "clearance": Clearance.CONFIDENTIAL},
        409,
        lambda a: ["A team must keep at least one admin"],
        id="member update: the last admin steps down",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:member-update",
        lambda a: [a.team.id, a.members[Role.VIEWER].id],
        lambda a: {"role": "overlord", "clearance": "secret"},
        400,
        lambda a: [
            "Select a valid choice. overlord is not one of the available choices.",
            f'id="member_{a.members[Role.VIEWER].id}_role_error"',
        ],
        id="member update: invalid input",
    ),
    pytest.param(
        Role.ADMIN,
        "settings:member-remove",
        lambda a: [a.team.id, a.members[Role.ADMIN].id],
        lambda a: None,
        409,
        lambda a: ["A team must keep at least one admin"],
        id="member remove: the last admin",
    ),
    pytest.param(
        Role.MANAGER,
        "settings:application-update",
        lambda a: [a.application.id],
        lambda a: {"name": "x" * 101},
        400,
        lambda a: ["Ensure this value has at most 100 characters (it has 101)."],
        id="application update: invalid input",
    ),
    pytest.param(
        Role.MANAGER,
        "settings:application-update",
        lambda a: [a.application.id],
        lambda a: {"name": "taken"},
        409,
        lambda a: [
            f"{a.team.name} already has an application named &#x27;taken&#x27;; names are unique in a team "
            "regardless of case.",
            f'<h1 id="application-heading">{a.application.name}</h1>',
        ],
        id="application update: a taken name",
    ),
    pytest.param(
        Role.MANAGER,
        "settings:key-create",
        lambda a: [a.application.id],
        lambda a: {
            "name": "",
            "role": "root",
            "clearance": Clearance.INTERNAL,
            "expires_at": (timezone.now() - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
        400,
        lambda a: [
            "This field is required.",
            "Select a valid choice. root is not one of the available choices.",
            "Pick an expiry in the future, or leave it empty.",
        ],
        id="key create: invalid input",
    ),
]


@pytest.mark.parametrize(("actor", "route", "args", "data", "status", "messages"), REFUSED_CHANGES)
def test_refused_changes_say_what_to_fix_and_change_nothing(
    team_a, team_b, operator, page_client_for, actor, route, args, data, status, messages
):
    ApplicationFactory.create(team=team_a.team, name="taken")  # a name to collide with

    response = assert_refused(
        page_client_for(operator if actor == "operator" else team_a.members[actor]),
        "post",
        reverse(route, args=args(team_a)),
        data=data(team_a),
        status=status,
        unchanged=EVERYTHING,
    )

    body = text(response)
    for message in messages(team_a):
        assert message in body
    assert "Copy it now" not in body


# /settings/teams/<id>/ ----------------------------------------------------------------


def test_team_page_lists_members_with_role_and_clearance_and_the_teams_applications(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.VIEWER]).get(reverse("settings:team", args=[team_a.team.id]))

    assert response.status_code == 200
    body = text(response)
    for role, member in team_a.members.items():
        assert f'<tr id="member-{member.id}">' in body
        assert member.username in body
        assert f"<td>{Role(role).label}</td>" in body
    assert body.count("<td>confidential</td>") == 6
    assert f'href="/settings/applications/{team_a.application.id}/"' in body
    # a viewer gets no forms
    assert "Edit team" not in body
    assert "Add a member" not in body
    assert "/members/" not in body


def test_team_page_gives_admins_forms_to_edit_the_team_and_its_members(team_a, page_client_for):
    body = text(page_client_for(team_a.members[Role.ADMIN]).get(reverse("settings:team", args=[team_a.team.id])))

    viewer = team_a.members[Role.VIEWER]
    assert "Edit team" in body
    assert "Add a member" in body
    assert f'hx-post="/settings/teams/{team_a.team.id}/members/{viewer.id}/update/"' in body
    assert f'hx-post="/settings/teams/{team_a.team.id}/members/{viewer.id}/remove/"' in body
    assert f'hx-confirm="Remove {viewer.username} from Team A?"' in body
    assert f'<label class="visually-hidden" for="member_{viewer.id}_role">Role of {viewer.username}</label>' in body


def test_team_page_queries_do_not_grow_with_members(team_a, page_client_for, django_assert_max_num_queries):
    for _ in range(20):
        MembershipFactory(team=team_a.team)
    for index in range(5):
        invitation_create(
            caller=caller_for_user(team_a.members[Role.ADMIN]),
            team=team_a.team,
            email=f"x{index}@example.com",
            role=Role.VIEWER,
            clearance=Clearance.PUBLIC,
        )
    client = page_client_for(team_a.members[Role.ADMIN])

    # session, user, grants, team, members with their users, applications, invitations (admins)
    with django_assert_max_num_queries(8):  # + the navigation's unread-notifications count
        response = client.get(reverse("settings:team", args=[team_a.team.id]))

    assert response.status_code == 200
    assert text(response).count('<tr id="member-') == 26
    assert text(response).count('<tr id="invitation-') == 5


# Team update --------------------------------------------------------------------------


def test_admin_edits_the_team(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.ADMIN]).post(
        reverse("settings:team-update", args=[team_a.team.id]),
        {"name": "Team Alpha", "description": "Renamed", "time_zone": "Asia/Tokyo"},
        headers=HTMX,
    )

    assert response.status_code == 200
    team_a.team.refresh_from_db()
    assert (team_a.team.name, team_a.team.description, team_a.team.time_zone) == (
        "Team Alpha",
        "Renamed",
        "Asia/Tokyo",
    )
    assert not is_full_page(response)
    assert '<h1 id="team-heading">Team Alpha</h1>' in text(response)
    assert "Saved the team." in text(response)


def test_admin_edits_the_team_with_a_plain_form_and_is_redirected(team_a, page_client_for):
    url = reverse("settings:team-update", args=[team_a.team.id])

    response = page_client_for(team_a.members[Role.ADMIN]).post(url, {"name": "Team Alpha", "time_zone": "UTC"})

    assert response.status_code == 302
    assert response["Location"] == reverse("settings:team", args=[team_a.team.id])
    assert Team.objects.get(pk=team_a.team.pk).name == "Team Alpha"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MANAGER])
def test_only_admins_edit_the_team(team_a, page_client_for, role):
    response = assert_refused(
        page_client_for(team_a.members[role]),
        "post",
        reverse("settings:team-update", args=[team_a.team.id]),
        data={"name": "Hijacked", "time_zone": "UTC"},
        status=403,
        unchanged=EVERYTHING,
    )

    assert "does not allow you to change this team" in text(response)


# Members ------------------------------------------------------------------------------


def test_admin_adds_a_member_by_username(team_a, page_client_for):
    newcomer = UserFactory.create(username="newcomer")

    response = page_client_for(team_a.members[Role.ADMIN]).post(
        reverse("settings:team-members-add", args=[team_a.team.id]),
        {"username": "newcomer", "role": Role.REVIEWER, "clearance": Clearance.PUBLIC},
        headers=HTMX,
    )

    assert response.status_code == 200
    membership = Membership.objects.get(user=newcomer)
    assert (membership.team_id, membership.role, membership.clearance) == (
        team_a.team.id,
        Role.REVIEWER,
        Clearance.PUBLIC,
    )
    assert not is_full_page(response)
    assert "Added newcomer as Reviewer." in text(response)
    assert f'<tr id="member-{newcomer.id}">' in text(response)


def test_member_add_rejects_invalid_input(team_a, page_client_for):
    UserFactory.create(username="newcomer")

    response = assert_refused(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        reverse("settings:team-members-add", args=[team_a.team.id]),
        data={"username": "newcomer", "role": Role.APPLICATION, "clearance": 99},
        status=400,
        unchanged=EVERYTHING,
    )

    assert text(response).count("Select a valid choice.") == 2


def test_admin_changes_a_members_role_and_clearance(team_a, page_client_for):
    viewer = team_a.members[Role.VIEWER]

    response = page_client_for(team_a.members[Role.ADMIN]).post(
        reverse("settings:member-update", args=[team_a.team.id, viewer.id]),
        {"role": Role.REVIEWER, "clearance": Clearance.PUBLIC},
        headers=HTMX,
    )

    assert response.status_code == 200
    membership = Membership.objects.get(user=viewer, team=team_a.team)
    assert (membership.role, membership.clearance) == (Role.REVIEWER, Clearance.PUBLIC)
    assert Membership.objects.filter(team=team_a.team).count() == 6
    assert f"{viewer.username} is now Reviewer with public clearance." in text(response)


def test_member_update_of_a_user_outside_the_team_is_404(team_a, team_b, page_client_for):
    assert_hidden(
        page_client_for(team_a.members[Role.ADMIN]),
        "post",
        reverse("settings:member-update", args=[team_a.team.id, team_b.members[Role.VIEWER].id]),
        data={"role": Role.ADMIN, "clearance": Clearance.PUBLIC},
        unchanged=EVERYTHING,
    )


def test_admin_removes_a_member(team_a, page_client_for):
    viewer = team_a.members[Role.VIEWER]

    response = page_client_for(team_a.members[Role.ADMIN]).post(
        reverse("settings:member-remove", args=[team_a.team.id, viewer.id]), headers=HTMX
    )

    assert response.status_code == 200
    assert not Membership.objects.filter(user=viewer).exists()
    assert Membership.objects.filter(team=team_a.team).count() == 5
    assert f"Removed {viewer.username} from Team A." in text(response)
    assert f'<tr id="member-{viewer.id}">' not in text(response)


def test_an_admin_who_leaves_is_sent_back_to_the_team_list(team_a, page_client_for):
    # given a second admin, so that the first may leave
    manager = team_a.members[Role.MANAGER]
    Membership.objects.filter(user=manager).update(role=Role.ADMIN)
    admin = team_a.members[Role.ADMIN]

    response = page_client_for(admin).post(
        reverse("settings:member-remove", args=[team_a.team.id, admin.id]), headers=HTMX
    )

    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("settings:teams")
    assert not Membership.objects.filter(user=admin).exists()


# /settings/applications/<id>/ ---------------------------------------------------------


def test_application_page_shows_keys_and_the_key_form_to_managers(team_a, page_client_for):
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    response = page_client_for(team_a.members[Role.MANAGER]).get(
        reverse("settings:application", args=[team_a.application.id])
    )

    assert response.status_code == 200
    body = text(response)
    assert f'<h1 id="application-heading">{team_a.application.name}</h1>' in body
    assert f"<code>cp_{api_key.prefix}</code>" in body
    assert '<th scope="row">backend</th>' in body
    assert '<span class="badge status-active">active</span>' in body
    assert "Create an API key" in body
    assert "Edit application" in body
    assert f'hx-post="/settings/applications/{team_a.application.id}/keys/{api_key.id}/revoke/"' in body


def test_application_page_hides_keys_from_viewers(team_a, page_client_for):
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    body = text(
        page_client_for(team_a.members[Role.VIEWER]).get(reverse("settings:application", args=[team_a.application.id]))
    )

    assert api_key.prefix not in body
    assert "Your role does not let you see this application's API keys" in body
    assert "Create an API key" not in body
    assert "Edit application" not in body


def test_compliance_officers_see_keys_but_cannot_create_or_revoke_them(team_a, page_client_for):
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    body = text(
        page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get(
            reverse("settings:application", args=[team_a.application.id])
        )
    )

    assert f"<code>cp_{api_key.prefix}</code>" in body
    assert "Create an API key" not in body
    assert "/revoke/" not in body


def test_application_page_shows_revoked_and_expired_keys_as_such(team_a, page_client_for):
    revoked, _ = api_key_create(caller=None, application=team_a.application, name="old")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    expired, _ = api_key_create(caller=None, application=team_a.application, name="stale")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - datetime.timedelta(days=1))

    body = text(
        page_client_for(team_a.members[Role.MANAGER]).get(reverse("settings:application", args=[team_a.application.id]))
    )

    assert '<span class="badge status-revoked">revoked</span>' in body
    assert '<span class="badge status-expired">expired</span>' in body
    assert "/revoke/" not in body


def test_application_page_queries_do_not_grow_with_keys(team_a, page_client_for, django_assert_max_num_queries):
    manager = team_a.members[Role.MANAGER]
    for index in range(15):
        api_key, _ = api_key_create(caller=None, application=team_a.application, name=f"key {index}")
        ApiKey.objects.filter(pk=api_key.pk).update(created_by=manager, revoked_by=manager)
    client = page_client_for(manager)

    # session, user, grants, application with its team, keys with their creators and revokers
    with django_assert_max_num_queries(6):  # + the navigation's unread-notifications count
        response = client.get(reverse("settings:application", args=[team_a.application.id]))

    assert response.status_code == 200
    assert text(response).count('<tr id="key-') == 15


# Application update -------------------------------------------------------------------


def test_manager_edits_the_application(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.MANAGER]).post(
        reverse("settings:application-update", args=[team_a.application.id]),
        {"name": "assistant", "description": "The assistant"},
        headers=HTMX,
    )

    assert response.status_code == 200
    team_a.application.refresh_from_db()
    assert (team_a.application.name, team_a.application.description) == ("assistant", "The assistant")
    assert not is_full_page(response)
    assert "Saved the application." in text(response)


# API keys -----------------------------------------------------------------------------


def test_manager_creates_a_key_and_sees_its_secret_exactly_once(team_a, page_client_for):
    # given a manager on the application page
    manager = team_a.members[Role.MANAGER]
    client = page_client_for(manager)
    page_url = reverse("settings:application", args=[team_a.application.id])

    # when they create a key through the htmx form
    response = client.post(
        reverse("settings:key-create", args=[team_a.application.id]),
        {"name": "backend", "role": Role.APPLICATION, "clearance": Clearance.INTERNAL},
        headers=HTMX,
    )

    # then the key exists as asked and the response shows its secret once, with its row
    assert response.status_code == 201
    api_key = ApiKey.objects.get()
    assert (api_key.application_id, api_key.name, api_key.role, api_key.clearance) == (
        team_a.application.id,
        "backend",
        Role.APPLICATION,
        Clearance.INTERNAL,
    )
    assert (api_key.created_by, api_key.expires_at, api_key.revoked_at) == (manager, None, None)
    body = text(response)
    secret = body.split('<code id="new-key-secret" class="secret" tabindex="0">')[1].split("</code>")[0]
    assert api_key.secret_hash == secret_hash(secret)
    assert body.count(secret) == 1
    assert "Copy it now, it will not be shown again." in body
    assert f'<tr id="key-{api_key.id}" class="new">' in body
    assert not is_full_page(response)
    assert "no-store" in response["Cache-Control"]

    # and no later render of the page shows the secret again
    for later in (client.get(page_url), client.get(page_url, headers=HTMX)):
        assert later.status_code == 200
        assert secret not in text(later)
        assert f"<code>cp_{api_key.prefix}</code>" in text(later)
        assert "Copy it now" not in text(later)


def test_a_key_created_with_a_plain_form_shows_its_secret_on_the_full_page(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.MANAGER])

    response = client.post(
        reverse("settings:key-create", args=[team_a.application.id]),
        {"name": "backend", "role": Role.APPLICATION, "clearance": Clearance.INTERNAL},
    )

    assert response.status_code == 201
    assert is_full_page(response)
    api_key = ApiKey.objects.get()
    secret = text(response).split('<code id="new-key-secret" class="secret" tabindex="0">')[1].split("</code>")[0]
    assert api_key.secret_hash == secret_hash(secret)
    assert text(response).count(secret) == 1
    assert secret not in text(client.get(reverse("settings:application", args=[team_a.application.id])))


def test_a_key_can_expire(team_a, page_client_for):
    expires_at = (timezone.now() + datetime.timedelta(days=30)).replace(second=0, microsecond=0)

    response = page_client_for(team_a.members[Role.MANAGER]).post(
        reverse("settings:key-create", args=[team_a.application.id]),
        {
            "name": "temporary",
            "role": Role.VIEWER,
            "clearance": Clearance.PUBLIC,
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M"),
        },
        headers=HTMX,
    )

    assert response.status_code == 201
    api_key = ApiKey.objects.get()
    assert (api_key.role, api_key.clearance, api_key.expires_at) == (Role.VIEWER, Clearance.PUBLIC, expires_at)
    assert f"<td>{expires_at:%Y-%m-%d %H:%M}</td>" in text(response)


@pytest.mark.parametrize(
    ("role", "clearance", "message"),
    [
        (Role.ADMIN, Clearance.INTERNAL, "cannot give the role &#x27;admin&#x27; to a key"),
        (Role.APPLICATION, Clearance.RESTRICTED, "You cannot give a key the clearance &#x27;restricted&#x27;"),
    ],
)
def test_a_manager_cannot_create_a_key_with_more_rights_than_their_own(
    team_a, page_client_for, role, clearance, message
):
    response = assert_refused(
        page_client_for(team_a.members[Role.MANAGER]),
        "post",
        reverse("settings:key-create", args=[team_a.application.id]),
        data={"name": "escalate", "role": role, "clearance": clearance},
        status=403,
        unchanged=EVERYTHING,
    )

    assert message in text(response)


def test_manager_revokes_a_key(team_a, page_client_for):
    manager = team_a.members[Role.MANAGER]
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    response = page_client_for(manager).post(
        reverse("settings:key-revoke", args=[team_a.application.id, api_key.id]), headers=HTMX
    )

    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api_key.revoked_by == manager
    assert not is_full_page(response)
    assert f"Revoked key backend (cp_{api_key.prefix})" in text(response)
    assert '<span class="badge status-revoked">revoked</span>' in text(response)


def test_revoke_button_asks_for_confirmation(team_a, page_client_for):
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    body = text(
        page_client_for(team_a.members[Role.MANAGER]).get(reverse("settings:application", args=[team_a.application.id]))
    )

    assert f'hx-confirm="Revoke the key backend (cp_{api_key.prefix})?' in body


@pytest.mark.parametrize("role", [Role.VIEWER, Role.COMPLIANCE_OFFICER])
def test_only_managers_and_admins_revoke_keys(team_a, page_client_for, role):
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")

    response = assert_refused(
        page_client_for(team_a.members[role]),
        "post",
        reverse("settings:key-revoke", args=[team_a.application.id, api_key.id]),
        status=403,
        unchanged=EVERYTHING,
    )

    assert "Could not revoke the key" in text(response)


def test_key_revoke_in_another_team_is_404(team_a, team_b, page_client_for):
    api_key, _ = api_key_create(caller=None, application=team_a.application, name="backend")
    client = page_client_for(team_b.members[Role.ADMIN])

    assert_hidden(
        client,
        "post",
        reverse("settings:key-revoke", args=[team_a.application.id, api_key.id]),
        unchanged=EVERYTHING,
    )
    # nor through an application of their own
    assert_hidden(
        client,
        "post",
        reverse("settings:key-revoke", args=[team_b.application.id, api_key.id]),
        unchanged=EVERYTHING,
    )


def test_anonymous_posts_change_nothing(team_a):
    before = snapshot(*EVERYTHING)

    response = Client().post(
        reverse("settings:key-create", args=[team_a.application.id]),
        {"name": "backend", "role": Role.APPLICATION, "clearance": Clearance.INTERNAL},
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert snapshot(*EVERYTHING) == before


# Login, logout and the areas not built yet -------------------------------------------


def test_login_page_renders(db):
    response = Client().get(reverse("login"))

    assert response.status_code == 200
    assert 'name="username"' in text(response)
    assert 'name="password"' in text(response)


def test_login_with_the_right_credentials_redirects_home(db):
    UserFactory.create(username="alice")

    response = Client().post(reverse("login"), {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_login_with_wrong_credentials_shows_an_error(db):
    UserFactory.create(username="alice")

    response = Client().post(reverse("login"), {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "Your username and password did not match" in text(response)


def test_logout_by_post_ends_the_session(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.VIEWER])

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("settings:teams")).status_code == 302


@pytest.mark.parametrize("area", AREAS, ids=[area.slug for area in AREAS])
def test_area_pages_render_for_members_and_send_anonymous_users_to_login(team_a, page_client_for, area):
    url = reverse("area", args=[area.slug])

    response = page_client_for(team_a.members[Role.VIEWER]).get(url)
    anonymous = Client().get(url)

    assert response.status_code == 200
    assert area.title in text(response)
    if resolve(url).url_name == "area":  # until the area's own pages replace the placeholder
        assert "Not built yet." in text(response)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/login/?next={url}"


def test_ids_too_large_for_the_database_are_404_not_errors(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])
    huge = 10**25
    team_id, application_id = team_a.team.id, team_a.application.id

    for method, url in (
        ("get", f"/settings/teams/{huge}/"),
        ("get", f"/settings/applications/{huge}/"),
        ("post", f"/settings/teams/{team_id}/members/{huge}/update/"),
        ("post", f"/settings/teams/{team_id}/members/{huge}/remove/"),
        ("post", f"/settings/applications/{application_id}/keys/{huge}/revoke/"),
    ):
        assert_hidden(client, method, url, data={"role": Role.VIEWER, "clearance": 0}, unchanged=EVERYTHING)
    response = assert_refused(
        client,
        "post",
        reverse("settings:application-create"),
        data={"team": huge, "name": "chatbot"},
        status=400,
        unchanged=EVERYTHING,
    )
    assert "Ensure this value is less than or equal to" in text(response)
