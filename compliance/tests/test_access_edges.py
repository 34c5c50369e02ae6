"""Access edges of the audit trail: export jobs queued with an API key run as the key's
application, and verification shows a team's officers only their teams' figures."""

from __future__ import annotations

import time

import pytest

from accounts.caller import caller_for_user
from accounts.models import ApiKey
from accounts.services import api_key_revoke
from accounts.tests.factories import UserFactory
from accounts.types import Role
from compliance import chain
from compliance.audit import audit_record
from compliance.models import AuditEvent, AuditExport, ExportStatus

EXPORTS = "/api/v1/audit/exports/"
VERIFY = "/api/v1/audit/verify/"


def record(team, action="test.action"):
    return audit_record(actor=caller_for_user(team.members[Role.ADMIN]), action=action, team_id=team.team.id)


def wait_for_export(export_id: str) -> AuditExport:
    audit_export = AuditExport.objects.get(pk=export_id)
    deadline = time.monotonic() + 90  # the solo worker may first drain tasks other tests queued
    while audit_export.status not in (ExportStatus.DONE, ExportStatus.FAILED) and time.monotonic() < deadline:
        time.sleep(0.2)
        audit_export.refresh_from_db()
    return audit_export


@pytest.mark.django_db(transaction=True)
def test_an_export_job_queued_with_an_api_key_runs_on_a_real_worker_as_the_keys_application(
    team_a, team_b, key_client_for, celery_worker
):
    for _ in range(3):
        record(team_a)
    record(team_b, "other.team")
    chain.seal_pending()
    client = key_client_for(team_a.application, role=Role.COMPLIANCE_OFFICER)

    response = client.post(EXPORTS, {"team": team_a.team.id, "format": "jsonl"}, format="json")
    assert response.status_code == 202, response.content
    audit_export = wait_for_export(response.json()["id"])

    assert (audit_export.status, audit_export.error) == (ExportStatus.DONE, "")
    detail = client.get(f"{EXPORTS}{audit_export.id}/").json()
    content = b"".join(client.get(detail["download_url"]).streaming_content)
    assert b"other.team" not in content
    assert content.count(b'"test.action"') == 3


@pytest.mark.django_db
def test_an_export_job_whose_key_was_revoked_fails_saying_so(
    team_a, key_client_for, django_capture_on_commit_callbacks
):
    from compliance import services

    record(team_a)
    client = key_client_for(team_a.application, role=Role.COMPLIANCE_OFFICER)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(EXPORTS, {"team": team_a.team.id}, format="json")
    api_key_revoke(caller=None, api_key=ApiKey.objects.get(name="test"))

    assert services.audit_export_run(export_id=response.json()["id"]) == "failed"

    audit_export = AuditExport.objects.get(pk=response.json()["id"])
    assert audit_export.status == ExportStatus.FAILED
    prefix = client.secret.split("_")[1]
    assert audit_export.error == (
        f"The API key that queued this export ({prefix}) is revoked or expired, or its application is archived."
    )


def seal_events_of_two_teams(team_a, team_b, *, of_team_a: int) -> None:
    """`of_team_a` sealed events of team A and five of team B."""
    for _ in range(of_team_a):
        record(team_a)
    for _ in range(5):
        record(team_b, "other.team")
    chain.seal_pending()


@pytest.mark.django_db
def test_verification_shows_a_team_admin_only_their_teams_figures(team_a, team_b, client_for):
    seal_events_of_two_teams(team_a, team_b, of_team_a=2)
    last_of_team_a = AuditEvent.objects.filter(team_id=team_a.team.id).order_by("-sequence")[0]
    system_wide = AuditEvent.objects.filter(sequence__isnull=False).count()
    assert system_wide == 7

    report = client_for(team_a.members[Role.ADMIN]).get(VERIFY).json()

    assert report["is_intact"] is True
    assert report["events_verified"] == 2
    assert (report["head_sequence"], report["head_hash"]) == (last_of_team_a.sequence, last_of_team_a.hash)
    assert report["pending_events"] == 2  # the admin's login and this verification, both of team A
    assert report["summary"].startswith(
        f"Audit chain intact: 2 events of your teams verified up to #{last_of_team_a.sequence}"
    )
    assert "7" not in report["summary"].replace(str(last_of_team_a.sequence), "")


@pytest.mark.django_db
def test_verification_page_shows_a_team_officer_only_their_teams_count(team_a, team_b, page_client_for):
    seal_events_of_two_teams(team_a, team_b, of_team_a=2)

    response = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).post("/compliance/verify/")

    assert response.status_code == 200
    assert "Audit chain intact: 2 events of your teams verified" in response.content.decode()


@pytest.mark.django_db
def test_an_operator_sees_the_whole_chain_in_the_verification(team_a, team_b, client_for):
    seal_events_of_two_teams(team_a, team_b, of_team_a=1)
    operator = UserFactory.create(is_superuser=True)

    report = client_for(operator).get(VERIFY).json()

    assert report["events_verified"] == 6
    assert report["summary"].startswith("Audit chain intact: 6 events verified up to #")


@pytest.mark.django_db
def test_a_team_admins_verification_is_recorded_without_the_chains_length(team_a, team_b, client_for):
    # (the team's own events list it: the system-wide count is the operator's to know)
    seal_events_of_two_teams(team_a, team_b, of_team_a=1)
    operator = UserFactory.create(is_superuser=True)

    client_for(team_a.members[Role.ADMIN]).get(VERIFY)
    client_for(operator).get(VERIFY)

    team_event = AuditEvent.objects.get(action="audit.verify", team_id=team_a.team.id)
    operator_event = AuditEvent.objects.get(action="audit.verify", actor_user_id=operator.id)
    assert team_event.metadata == {"is_intact": True}
    assert (operator_event.team_id, operator_event.metadata) == (None, {"is_intact": True, "head_sequence": 6})
