"""The accounts API: teams, members, applications, keys and /me, with their access rules."""

from __future__ import annotations

import datetime

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.keys import secret_hash
from accounts.models import ApiKey, Application, Membership, Role, Team
from accounts.tests.factories import UserFactory
from accounts.throttling import CallerRateThrottle
from core.classification import Clearance
from core.testing import assert_hidden, assert_openai_error, assert_refused

pytestmark = pytest.mark.django_db


# Teams ------------------------------------------------------------------------------


def test_team_list_shows_only_the_callers_teams_with_role_and_clearance(team_a, team_b, client_for):
    response = client_for(team_a.members[Role.MANAGER]).get("/api/v1/teams/")

    assert response.status_code == 200
    assert [(team["name"], team["role"], team["clearance"]) for team in response.json()["results"]] == [
        ("Team A", "manager", "confidential")
    ]


def test_operator_creates_a_team_and_becomes_its_admin(db, client_for):
    operator = UserFactory.create(is_superuser=True)

    response = client_for(operator).post(
        "/api/v1/teams/", {"name": "Search", "time_zone": "Europe/Paris"}, format="json"
    )

    assert response.status_code == 201, response.content
    team = Team.objects.get(name="Search")
    assert team.time_zone == "Europe/Paris"
    assert Membership.objects.get(team=team).role == Role.ADMIN
    assert response.json()["role"] == "admin"


def test_a_plain_member_cannot_create_teams(team_a, client_for):
    assert_refused(
        client_for(team_a.members[Role.ADMIN]),
        "post",
        "/api/v1/teams/",
        data={"name": "Rogue"},
        status=403,
        unchanged=[Team, Membership],
    )


def test_team_create_rejects_an_unknown_time_zone(db, client_for):
    operator = UserFactory.create(is_superuser=True)

    response = client_for(operator).post("/api/v1/teams/", {"name": "X", "time_zone": "Mars/Olympus"}, format="json")

    error = assert_openai_error(response, 400, param="time_zone")
    assert "IANA" in error["message"]
    assert not Team.objects.filter(name="X").exists()


def test_team_detail_of_another_team_is_404(team_a, team_b, client_for):
    client = client_for(team_a.members[Role.ADMIN])

    assert_hidden(client, "get", f"/api/v1/teams/{team_b.team.id}/", unchanged=[Team])
    assert_hidden(client, "patch", f"/api/v1/teams/{team_b.team.id}/", data={"name": "Taken"}, unchanged=[Team])


def test_admin_renames_team_but_viewer_cannot(team_a, client_for):
    url = f"/api/v1/teams/{team_a.team.id}/"
    assert_refused(
        client_for(team_a.members[Role.VIEWER]), "patch", url, data={"name": "V"}, status=403, unchanged=[Team]
    )

    response = client_for(team_a.members[Role.ADMIN]).patch(url, {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    assert Team.objects.get(pk=team_a.team.pk).name == "Renamed"


# Members ----------------------------------------------------------------------------


def test_members_are_listed_with_role_and_clearance_and_filterable(team_a, client_for):
    client = client_for(team_a.members[Role.VIEWER])

    everyone = client.get(f"/api/v1/teams/{team_a.team.id}/members/").json()["results"]
    reviewers = client.get(f"/api/v1/teams/{team_a.team.id}/members/?role=reviewer").json()["results"]

    assert len(everyone) == 6
    assert {member["role"] for member in everyone} == {role for role, _ in Role.choices} - {"application"}
    assert [member["username"] for member in reviewers] == [team_a.members[Role.REVIEWER].username]
    assert reviewers[0]["clearance"] == "confidential"


def test_admin_adds_changes_and_removes_a_member(team_a, client_for):
    newcomer = UserFactory.create(username="newcomer")
    client = client_for(team_a.members[Role.ADMIN])
    base = f"/api/v1/teams/{team_a.team.id}/members/"

    added = client.post(base, {"username": "newcomer", "role": "reviewer", "clearance": "public"}, format="json")
    changed = client.patch(f"{base}{newcomer.id}/", {"role": "prompt_engineer", "clearance": "internal"}, format="json")
    membership = Membership.objects.get(user=newcomer, team=team_a.team)
    removed = client.delete(f"{base}{newcomer.id}/")

    assert added.status_code == 201, added.content
    assert changed.json()["role"] == "prompt_engineer"
    assert (membership.role, membership.clearance) == (Role.PROMPT_ENGINEER, Clearance.INTERNAL)
    assert removed.status_code == 204
    assert not Membership.objects.filter(user=newcomer, team=team_a.team).exists()


def test_adding_an_unknown_user_names_the_field(team_a, client_for):
    response = client_for(team_a.members[Role.ADMIN]).post(
        f"/api/v1/teams/{team_a.team.id}/members/", {"username": "ghost"}, format="json"
    )

    error = assert_openai_error(response, 400, param="username")
    assert "ghost" in error["message"]


def test_adding_an_existing_member_is_a_conflict(team_a, client_for):
    viewer = team_a.members[Role.VIEWER]
    assert_refused(
        client_for(team_a.members[Role.ADMIN]),
        "post",
        f"/api/v1/teams/{team_a.team.id}/members/",
        data={"username": viewer.username, "role": "admin"},
        status=409,
        unchanged=[Membership],
    )


def test_manager_cannot_manage_members(team_a, client_for):
    client = client_for(team_a.members[Role.MANAGER])
    base = f"/api/v1/teams/{team_a.team.id}/members/"
    viewer = team_a.members[Role.VIEWER]
    UserFactory.create(username="someone")

    assert_refused(client, "post", base, data={"username": "someone"}, status=403, unchanged=[Membership])
    assert_refused(client, "patch", f"{base}{viewer.id}/", data={"role": "admin"}, status=403, unchanged=[Membership])
    assert_refused(client, "delete", f"{base}{viewer.id}/", status=403, unchanged=[Membership])


def test_the_last_admin_cannot_be_demoted_or_removed(make_team, client_for):
    world = make_team()
    admin = world.members[Role.ADMIN]
    client = client_for(admin)
    url = f"/api/v1/teams/{world.team.id}/members/{admin.id}/"

    assert_refused(client, "patch", url, data={"role": "viewer"}, status=409, unchanged=[Membership])
    assert_refused(client, "delete", url, status=409, unchanged=[Membership])


def test_an_admin_cannot_grant_a_clearance_above_their_own(team_a, client_for):
    UserFactory.create(username="analyst")
    assert_refused(
        client_for(team_a.members[Role.ADMIN]),  # confidential clearance
        "post",
        f"/api/v1/teams/{team_a.team.id}/members/",
        data={"username": "analyst", "clearance": "restricted"},
        status=403,
        unchanged=[Membership],
    )


def test_members_of_another_team_are_hidden(team_a, team_b, client_for):
    client = client_for(team_a.members[Role.ADMIN])
    other = team_b.members[Role.VIEWER]
    base = f"/api/v1/teams/{team_b.team.id}/members/"

    assert_hidden(client, "get", base, unchanged=[Membership])
    assert_hidden(client, "post", base, data={"username": other.username}, unchanged=[Membership])
    assert_hidden(client, "get", f"{base}{other.id}/", unchanged=[Membership])
    assert_hidden(client, "patch", f"{base}{other.id}/", data={"role": "admin"}, unchanged=[Membership])
    assert_hidden(client, "delete", f"{base}{other.id}/", unchanged=[Membership])


def test_member_role_must_be_a_known_role(team_a, client_for):
    viewer = team_a.members[Role.VIEWER]
    response = client_for(team_a.members[Role.ADMIN]).patch(
        f"/api/v1/teams/{team_a.team.id}/members/{viewer.id}/", {"role": "overlord"}, format="json"
    )

    error = assert_openai_error(response, 400, param="role")
    assert "admin" in error["message"]  # lists the accepted roles


# Applications -----------------------------------------------------------------------


def test_manager_creates_an_application_in_their_team(team_a, client_for):
    response = client_for(team_a.members[Role.MANAGER]).post(
        "/api/v1/applications/", {"team": team_a.team.id, "name": "support-bot"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert Application.objects.filter(team=team_a.team, name="support-bot").exists()
    assert response.json()["team"] == team_a.team.id


def test_application_in_another_team_cannot_be_created_or_seen(team_a, team_b, client_for):
    client = client_for(team_a.members[Role.MANAGER])

    assert_hidden(
        client, "post", "/api/v1/applications/", data={"team": team_b.team.id, "name": "x"}, unchanged=[Application]
    )
    assert_hidden(client, "get", f"/api/v1/applications/{team_b.application.id}/", unchanged=[Application])
    assert_hidden(
        client, "patch", f"/api/v1/applications/{team_b.application.id}/", data={"name": "x"}, unchanged=[Application]
    )
    listed = client.get("/api/v1/applications/").json()["results"]
    assert [application["id"] for application in listed] == [team_a.application.id]


def test_viewer_cannot_create_or_change_applications(team_a, client_for):
    client = client_for(team_a.members[Role.VIEWER])

    assert_refused(
        client,
        "post",
        "/api/v1/applications/",
        data={"team": team_a.team.id, "name": "x"},
        status=403,
        unchanged=[Application],
    )
    assert_refused(
        client,
        "patch",
        f"/api/v1/applications/{team_a.application.id}/",
        data={"name": "x"},
        status=403,
        unchanged=[Application],
    )


def test_duplicate_application_name_is_a_conflict(team_a, client_for):
    assert_refused(
        client_for(team_a.members[Role.MANAGER]),
        "post",
        "/api/v1/applications/",
        data={"team": team_a.team.id, "name": team_a.application.name},
        status=409,
        unchanged=[Application],
    )


def test_application_list_filters_by_name_and_paginates_by_cursor(team_a, client_for):
    for index in range(3):
        Application.objects.create(team=team_a.team, name=f"bot-{index}")
    client = client_for(team_a.members[Role.VIEWER])

    filtered = client.get("/api/v1/applications/?name=bot-").json()["results"]
    first = client.get("/api/v1/applications/?limit=2").json()
    second = client.get(first["next"]).json()

    assert sorted(application["name"] for application in filtered) == ["bot-0", "bot-1", "bot-2"]
    assert len(first["results"]) == 2
    seen = [application["id"] for application in first["results"] + second["results"]]
    assert len(seen) == len(set(seen)) == 4


def test_application_list_query_count_does_not_grow_per_row(team_a, client_for, django_assert_max_num_queries):
    for index in range(30):
        Application.objects.create(team=team_a.team, name=f"many-{index}")
    client = client_for(team_a.members[Role.VIEWER])

    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/applications/")

    assert len(response.json()["results"]) == 31


# API keys ---------------------------------------------------------------------------


def test_created_key_secret_is_shown_once_and_stored_only_as_a_hash(team_a, client_for):
    client = client_for(team_a.members[Role.MANAGER])
    base = f"/api/v1/applications/{team_a.application.id}/keys/"

    created = client.post(base, {"name": "ci", "role": "application", "clearance": "internal"}, format="json")
    listing = client.get(base)
    detail = client.get(f"{base}{created.json()['id']}/")

    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    api_key = ApiKey.objects.get(pk=created.json()["id"])
    assert api_key.secret_hash == secret_hash(secret)
    assert secret not in str(ApiKey.objects.filter(pk=api_key.pk).values().first())
    assert secret.startswith(f"cp_{api_key.prefix}_")
    assert created["Cache-Control"] == "no-store"
    assert "secret" not in listing.json()["results"][0]
    assert secret not in listing.content.decode() + detail.content.decode()


def test_revoked_key_is_refused_with_a_message_saying_so(team_a, client_for, key_client_for):
    key_client = key_client_for(team_a.application)
    api_key = ApiKey.objects.get(prefix=key_client.secret.split("_")[1])
    manager = client_for(team_a.members[Role.MANAGER])

    assert key_client.get("/api/v1/me").status_code == 200
    revoked = manager.post(f"/api/v1/applications/{team_a.application.id}/keys/{api_key.id}/revoke/")
    refused = key_client.get("/api/v1/me")

    assert revoked.status_code == 200
    assert revoked.json()["is_active"] is False
    error = assert_openai_error(refused, 401, code="api_key_revoked")
    assert "revoked" in error["message"]
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_delete_on_a_key_revokes_it_and_keeps_it_listed(team_a, client_for):
    client = client_for(team_a.members[Role.ADMIN])
    key_id = client.post(f"/api/v1/applications/{team_a.application.id}/keys/", {"name": "k"}, format="json").json()[
        "id"
    ]

    response = client.delete(f"/api/v1/applications/{team_a.application.id}/keys/{key_id}/")
    revoked_only = client.get(f"/api/v1/applications/{team_a.application.id}/keys/?revoked=true").json()["results"]

    assert response.status_code == 200
    assert [key["id"] for key in revoked_only] == [key_id]


def test_expired_key_is_refused(team_a, key_client_for):
    key_client = key_client_for(team_a.application)
    ApiKey.objects.filter(prefix=key_client.secret.split("_")[1]).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )

    error = assert_openai_error(key_client.get("/api/v1/me"), 401, code="api_key_expired")
    assert "expired" in error["message"]


def test_expiry_in_the_past_is_rejected(team_a, client_for):
    assert_refused(
        client_for(team_a.members[Role.MANAGER]),
        "post",
        f"/api/v1/applications/{team_a.application.id}/keys/",
        data={"name": "old", "expires_at": "2001-01-01T00:00:00Z"},
        status=400,
        unchanged=[ApiKey],
    )


def test_viewer_cannot_list_create_or_revoke_keys(team_a, client_for, key_client_for):
    key_client_for(team_a.application)
    api_key = ApiKey.objects.get()
    client = client_for(team_a.members[Role.VIEWER])
    base = f"/api/v1/applications/{team_a.application.id}/keys/"

    assert_refused(client, "get", base, status=403, unchanged=[ApiKey])
    assert_refused(client, "post", base, data={"name": "x"}, status=403, unchanged=[ApiKey])
    assert_refused(client, "post", f"{base}{api_key.id}/revoke/", status=403, unchanged=[ApiKey])


def test_keys_of_another_team_are_hidden(team_a, team_b, client_for, key_client_for):
    key_client_for(team_b.application)
    other_key = ApiKey.objects.get()
    client = client_for(team_a.members[Role.ADMIN])
    base = f"/api/v1/applications/{team_b.application.id}/keys/"
    # A key id of team B reached through team A's application is hidden too.
    mixed = f"/api/v1/applications/{team_a.application.id}/keys/{other_key.id}/"

    assert_hidden(client, "get", base, unchanged=[ApiKey])
    assert_hidden(client, "post", base, data={"name": "x"}, unchanged=[ApiKey])
    assert_hidden(client, "get", f"{base}{other_key.id}/", unchanged=[ApiKey])
    assert_hidden(client, "post", f"{base}{other_key.id}/revoke/", unchanged=[ApiKey])
    assert_hidden(client, "get", mixed, unchanged=[ApiKey])
    assert_hidden(client, "delete", mixed, unchanged=[ApiKey])


def test_manager_cannot_create_an_admin_key_or_one_above_their_clearance(team_a, client_for):
    client = client_for(team_a.members[Role.MANAGER])
    base = f"/api/v1/applications/{team_a.application.id}/keys/"

    assert_refused(client, "post", base, data={"name": "x", "role": "admin"}, status=403, unchanged=[ApiKey])
    assert_refused(client, "post", base, data={"name": "x", "clearance": "restricted"}, status=403, unchanged=[ApiKey])


def test_unknown_fields_are_rejected_by_name(team_a, client_for):
    response = client_for(team_a.members[Role.MANAGER]).post(
        f"/api/v1/applications/{team_a.application.id}/keys/", {"name": "x", "scopes": ["all"]}, format="json"
    )

    error = assert_openai_error(response, 400, param="scopes")
    assert "Unknown field" in error["message"]
    assert not ApiKey.objects.exists()


def test_invalid_clearance_lists_the_levels(team_a, client_for):
    response = client_for(team_a.members[Role.MANAGER]).post(
        f"/api/v1/applications/{team_a.application.id}/keys/", {"name": "x", "clearance": "top-secret"}, format="json"
    )

    error = assert_openai_error(response, 400, param="clearance")
    assert "public, internal, confidential, restricted" in error["message"]


# API-key callers --------------------------------------------------------------------


def test_me_for_a_key_names_application_team_role_and_clearance(team_a, key_client_for):
    body = key_client_for(team_a.application, clearance=Clearance.CONFIDENTIAL).get("/api/v1/me").json()

    assert body["kind"] == "api_key"
    assert body["application"] == {"id": team_a.application.id, "name": team_a.application.name}
    assert body["team"]["id"] == team_a.team.id
    assert (body["role"], body["clearance"]) == ("application", "confidential")


def test_me_for_a_user_lists_each_team_with_its_role(team_a, team_b, client_for):
    user = team_a.members[Role.REVIEWER]
    Membership.objects.create(user=user, team=team_b.team, role=Role.MANAGER, clearance=Clearance.PUBLIC)

    body = client_for(user).get("/api/v1/me").json()

    assert body["kind"] == "user"
    assert body["user"]["username"] == user.username
    assert [(team["name"], team["role"], team["clearance"]) for team in body["teams"]] == [
        ("Team A", "reviewer", "confidential"),
        ("Team B", "manager", "public"),
    ]


def test_application_key_sees_only_its_own_application(team_a, key_client_for):
    sibling = Application.objects.create(team=team_a.team, name="sibling")
    client = key_client_for(team_a.application)

    listed = client.get("/api/v1/applications/").json()["results"]

    assert [application["id"] for application in listed] == [team_a.application.id]
    assert_hidden(client, "get", f"/api/v1/applications/{sibling.id}/", unchanged=[Application])


def test_application_key_cannot_manage_keys_or_members(team_a, key_client_for):
    client = key_client_for(team_a.application)
    client.get("/api/v1/me")  # records the key's first use, which is not part of what is refused

    assert_refused(
        client,
        "post",
        f"/api/v1/applications/{team_a.application.id}/keys/",
        data={"name": "x"},
        status=403,
        unchanged=[ApiKey],
    )
    assert_refused(
        client,
        "post",
        f"/api/v1/teams/{team_a.team.id}/members/",
        data={"username": "x"},
        status=403,
        unchanged=[Membership],
    )


def test_a_manager_key_can_provision_applications_in_its_team_only(team_a, team_b, key_client_for):
    client = key_client_for(team_a.application, role=Role.MANAGER)

    created = client.post("/api/v1/applications/", {"team": team_a.team.id, "name": "provisioned"}, format="json")

    assert created.status_code == 201
    assert_hidden(
        client, "post", "/api/v1/applications/", data={"team": team_b.team.id, "name": "x"}, unchanged=[Application]
    )
    assert_hidden(client, "get", f"/api/v1/teams/{team_b.team.id}/", unchanged=[Team])


def test_key_last_used_time_is_recorded(team_a, key_client_for):
    client = key_client_for(team_a.application)
    assert ApiKey.objects.get().last_used_at is None

    client.get("/api/v1/me")

    assert ApiKey.objects.get().last_used_at is not None


# Authentication and request errors --------------------------------------------------


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("Token abc", "invalid_api_key"),
        ("Bearer", "invalid_api_key"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer cp_000000000000_wrongwrongwrongwrongwrong", "invalid_api_key"),
    ],
)
def test_missing_or_malformed_authorization_is_401(db, header, code):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)

    assert_openai_error(client.get("/api/v1/me"), 401, code=code)


def test_malformed_json_is_400(team_a, client_for):
    response = client_for(team_a.members[Role.MANAGER]).generic(
        "POST", "/api/v1/applications/", "{not json", content_type="application/json"
    )

    assert_openai_error(response, 400, code="invalid_json")


def test_a_json_array_body_is_400(team_a, client_for):
    response = client_for(team_a.members[Role.MANAGER]).post("/api/v1/applications/", [1, 2], format="json")

    assert_openai_error(response, 400)


def test_unknown_api_path_is_a_json_404(db, client):
    response = client.get("/api/v1/nothing-here/")

    assert_openai_error(response, 404, code="not_found")


def test_throttling_is_per_key_and_answers_429_with_retry_after(team_a, key_client_for, monkeypatch):
    cache.clear()
    # The rate table is bound when DRF loads the class, so the test narrows it there.
    monkeypatch.setattr(CallerRateThrottle, "THROTTLE_RATES", {"caller": "2/minute"})
    client = key_client_for(team_a.application)
    other_key = key_client_for(team_a.application)

    statuses = [client.get("/api/v1/me").status_code for _ in range(3)]
    refused = client.get("/api/v1/me")
    other = other_key.get("/api/v1/me")
    cache.clear()

    assert statuses == [200, 200, 429]
    assert_openai_error(refused, 429)
    assert int(refused["Retry-After"]) > 0
    assert other.status_code == 200


def test_openapi_schema_lists_the_endpoints(db, client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/teams/", "/api/v1/teams/{team_id}/members/", "/api/v1/applications/{application_id}/keys/"):
        assert path in paths


@pytest.mark.parametrize("value", ["-3.4e99", "1.5", "99999999999999999999999", "abc"])
def test_an_id_filter_that_is_not_a_database_id_is_400_naming_it(team_a, client_for, value):
    response = client_for(team_a.members[Role.VIEWER]).get("/api/v1/applications/", {"team": value})

    assert_openai_error(response, 400, param="team")
