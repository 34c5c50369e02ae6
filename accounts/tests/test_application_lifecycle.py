"""Application names are checked in one place; applications are archived, restored or deleted."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ApiKey, Application, Membership, Role, Team
from accounts.tests.factories import ApplicationFactory
from compliance.models import AuditEvent
from core.testing import assert_openai_error, assert_refused, snapshot
from observability.models import Call
from observability.tests.factories import CallFactory

pytestmark = pytest.mark.django_db

EVERYTHING = (Team, Membership, Application, ApiKey, AuditEvent)


def _application_url(application: Application, suffix: str = "") -> str:
    return f"/api/v1/applications/{application.id}/{suffix}"


# Names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("bad\x00name", "control characters"),
        ("two\nlines", "control characters"),
        ("bell\x07", "control characters"),
        ("zero\u200bwidth", "invisible"),
        ("x" * 101, "no more than 100"),
        ("   ", "may not be blank"),
    ],
)
def test_the_api_refuses_a_bad_application_name_naming_the_field(team_a, client_for, name, fragment):
    client = client_for(team_a.members[Role.ADMIN])

    response = assert_refused(
        client,
        "post",
        "/api/v1/applications/",
        data={"team": team_a.team.id, "name": name},
        status=400,
        unchanged=EVERYTHING,
    )

    error = assert_openai_error(response, 400, param="name")
    assert fragment in error["message"]


def test_a_name_differing_only_in_case_is_taken(team_a, client_for):
    ApplicationFactory(team=team_a.team, name="Support Bot")
    client = client_for(team_a.members[Role.ADMIN])

    response = assert_refused(
        client,
        "post",
        "/api/v1/applications/",
        data={"team": team_a.team.id, "name": "  support bot "},
        status=409,
        unchanged=EVERYTHING,
    )

    error = assert_openai_error(response, 409, param="name")
    assert error["message"] == (
        "Team A already has an application named 'Support Bot'; names are unique in a team regardless of case."
    )


def test_a_rename_is_checked_the_same_way(team_a, client_for):
    ApplicationFactory(team=team_a.team, name="Taken")
    client = client_for(team_a.members[Role.ADMIN])

    assert_refused(
        client, "patch", _application_url(team_a.application), data={"name": "TAKEN"}, status=409, unchanged=EVERYTHING
    )
    assert_refused(
        client, "patch", _application_url(team_a.application), data={"name": "a\tb"}, status=400, unchanged=EVERYTHING
    )


def test_a_name_is_stored_stripped_and_the_same_name_in_another_team_is_fine(team_a, team_b, client_for):
    ApplicationFactory(team=team_b.team, name="Support bot")
    client = client_for(team_a.members[Role.ADMIN])

    response = client.post("/api/v1/applications/", {"team": team_a.team.id, "name": " Support bot "}, format="json")

    assert response.status_code == 201
    assert response.json()["name"] == "Support bot"


def test_the_settings_form_refuses_a_bad_name_with_a_field_error(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])

    response = assert_refused(
        client,
        "post",
        reverse("settings:application-create"),
        data={"team": team_a.team.id, "name": "tab\there"},
        status=400,
        unchanged=EVERYTHING,
    )

    assert "may not contain control characters" in response.content.decode()


# Archive and restore ----------------------------------------------------------------------


def test_an_admin_archives_an_application_its_keys_stop_and_it_is_listed_apart(team_a, client_for, key_client_for):
    key_client = key_client_for(team_a.application)
    assert key_client.get("/api/v1/me").status_code == 200
    admin = client_for(team_a.members[Role.ADMIN])

    response = admin.post(_application_url(team_a.application, "archive/"))

    assert response.status_code == 200
    assert response.json()["archived_at"] is not None
    refused = key_client.get("/api/v1/me")
    assert_openai_error(refused, 401, code="application_archived")
    active = [row["id"] for row in admin.get("/api/v1/applications/").json()["results"]]
    archived = [row["id"] for row in admin.get("/api/v1/applications/?archived=true").json()["results"]]
    assert team_a.application.id not in active
    assert archived == [team_a.application.id]
    event = AuditEvent.objects.filter(action="application.archive").get()
    assert (event.target_id, event.team_id, event.actor_user_id) == (
        str(team_a.application.id),
        team_a.team.id,
        team_a.members[Role.ADMIN].id,
    )


def test_a_restored_application_keys_work_again(team_a, client_for, key_client_for):
    key_client = key_client_for(team_a.application)
    admin = client_for(team_a.members[Role.ADMIN])
    admin.post(_application_url(team_a.application, "archive/"))

    response = admin.post(_application_url(team_a.application, "restore/"))

    assert response.status_code == 200
    assert response.json()["archived_at"] is None
    assert key_client.get("/api/v1/me").status_code == 200
    assert AuditEvent.objects.filter(action="application.restore").count() == 1


@pytest.mark.parametrize("role", [Role.MANAGER, Role.PROMPT_ENGINEER, Role.VIEWER])
def test_only_team_admins_archive_restore_or_delete(team_a, client_for, role):
    client = client_for(team_a.members[role])

    for method, suffix in (("post", "archive/"), ("post", "restore/"), ("delete", "")):
        assert_refused(
            client, method, _application_url(team_a.application, suffix), status=403, unchanged=EVERYTHING[:4]
        )


def test_another_team_application_is_hidden(team_a, team_b, client_for):
    client = client_for(team_a.members[Role.ADMIN])

    for method, suffix in (("post", "archive/"), ("post", "restore/"), ("delete", "")):
        assert_refused(client, method, _application_url(team_b.application, suffix), status=404, unchanged=EVERYTHING)


def test_archiving_twice_is_a_conflict_that_changes_nothing(team_a, client_for):
    admin = client_for(team_a.members[Role.ADMIN])
    admin.post(_application_url(team_a.application, "archive/"))

    assert_refused(admin, "post", _application_url(team_a.application, "archive/"), status=409, unchanged=EVERYTHING)
    admin.post(_application_url(team_a.application, "restore/"))
    assert_refused(admin, "post", _application_url(team_a.application, "restore/"), status=409, unchanged=EVERYTHING)


def test_an_archived_application_gets_no_new_keys(team_a, client_for):
    admin = client_for(team_a.members[Role.ADMIN])
    admin.post(_application_url(team_a.application, "archive/"))

    assert_refused(
        admin,
        "post",
        _application_url(team_a.application, "keys/"),
        data={"name": "new"},
        status=409,
        unchanged=EVERYTHING,
    )


# Delete -----------------------------------------------------------------------------------


def test_an_application_without_calls_is_deleted(team_a, client_for):
    admin = client_for(team_a.members[Role.ADMIN])
    application = ApplicationFactory.create(team=team_a.team, name="Scratch")

    response = admin.delete(_application_url(application))

    assert response.status_code == 204
    assert not Application.objects.filter(pk=application.pk).exists()
    event = AuditEvent.objects.filter(action="application.delete").get()
    assert event.before is not None
    assert event.before["name"] == "Scratch"


def test_an_application_with_calls_is_not_deleted_and_is_told_to_archive(team_a, client_for):
    CallFactory.create(world=team_a)
    admin = client_for(team_a.members[Role.ADMIN])

    response = assert_refused(
        admin, "delete", _application_url(team_a.application), status=409, unchanged=(*EVERYTHING, Call)
    )

    error = assert_openai_error(response, 409, code="application_has_calls")
    assert "has 1 recorded call" in error["message"]
    assert "Archive it instead" in error["message"]


# Settings pages ---------------------------------------------------------------------------


def test_an_admin_archives_and_restores_from_the_settings_page(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.ADMIN])
    page = reverse("settings:application", args=[team_a.application.id])
    assert "Archive application" in client.get(page).content.decode()

    response = client.post(reverse("settings:application-archive", args=[team_a.application.id]))

    assert response.status_code == 302
    team_a.application.refresh_from_db()
    assert team_a.application.archived_at is not None
    settings_page = client.get(reverse("settings:teams")).content.decode()
    assert 'id="archived-applications"' in settings_page
    assert "Restore application" in client.get(page).content.decode()
    client.post(reverse("settings:application-restore", args=[team_a.application.id]))
    team_a.application.refresh_from_db()
    assert team_a.application.archived_at is None


def test_a_manager_sees_no_archive_button_and_is_refused(team_a, page_client_for):
    client = page_client_for(team_a.members[Role.MANAGER])
    page = reverse("settings:application", args=[team_a.application.id])
    assert "Archive application" not in client.get(page).content.decode()

    before = snapshot(*EVERYTHING[:4])
    response = client.post(reverse("settings:application-archive", args=[team_a.application.id]))

    assert response.status_code == 403
    assert snapshot(*EVERYTHING[:4]) == before


def test_deleting_an_application_with_calls_from_the_page_says_to_archive(team_a, page_client_for):
    CallFactory.create(world=team_a)
    client = page_client_for(team_a.members[Role.ADMIN])

    response = assert_refused(
        client,
        "post",
        reverse("settings:application-delete", args=[team_a.application.id]),
        status=409,
        unchanged=(*EVERYTHING, Call),
    )

    assert "Archive it instead" in response.content.decode()
