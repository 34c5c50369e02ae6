"""The audit API: events, verification, streamed export with a signed manifest, export jobs, retention."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest

from accounts.caller import caller_for_user
from accounts.tests.factories import UserFactory
from accounts.types import Role
from compliance import chain
from compliance.audit import Action, audit_record
from compliance.export import EXPORT_COLUMNS
from compliance.models import AuditEvent, AuditExport, ExportStatus, RetentionPolicy
from compliance.tests.conftest import attacker_access
from core.testing import assert_hidden, assert_openai_error, assert_refused

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/audit/events/"
VERIFY = "/api/v1/audit/verify/"
EXPORT = "/api/v1/audit/export/"
EXPORTS = "/api/v1/audit/exports/"


def record(team, action="test.action", **fields):
    return audit_record(actor=caller_for_user(team.members[Role.ADMIN]), action=action, team_id=team.team.id, **fields)


def officer(team, client_for):
    return client_for(team.members[Role.COMPLIANCE_OFFICER])


def body_lines(response) -> list[bytes]:
    return b"".join(response.streaming_content).splitlines(keepends=True)


# Events ---------------------------------------------------------------------------


def test_compliance_officer_lists_own_team_events_newest_first(team_a, team_b, client_for):
    client = officer(team_a, client_for)
    first = record(team_a, "first.thing")
    second = record(team_a, "second.thing", before={"a": 1}, after={"a": 2})
    record(team_b, "other.team")
    chain.seal_pending()

    response = client.get(EVENTS, {"action": "second.thing"})

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["id"] == second.id
    assert (row["action"], row["before"], row["after"], row["team_id"]) == (
        "second.thing",
        {"a": 1},
        {"a": 2},
        team_a.team.id,
    )
    assert row["sequence"] is not None
    assert len(row["hash"]) == 64
    listed = [row["action"] for row in client.get(EVENTS).json()["results"]]
    assert "other.team" not in listed
    assert listed.index("second.thing") < listed.index("first.thing")
    assert first.id


def test_events_filter_by_action_prefix_actor_application_and_time(team_a, client_for):
    client = officer(team_a, client_for)
    admin = team_a.members[Role.ADMIN]
    record(team_a, "api_key.create", application_id=team_a.application.id)
    record(team_a, "api_key.revoke")
    record(team_a, "team.update")

    def actions(**params):
        return sorted(
            row["action"] for row in client.get(EVENTS, params).json()["results"] if row["action"] != "auth.login"
        )

    assert actions(action="api_key.*") == ["api_key.create", "api_key.revoke"]
    assert actions(application=team_a.application.id) == ["api_key.create"]
    assert actions(actor_user=admin.id) == ["api_key.create", "api_key.revoke", "team.update"]
    assert actions(actor=admin.username) == ["api_key.create", "api_key.revoke", "team.update"]
    assert actions(since="2000-01-01", until="2001-01-01T00:00:00Z") == []
    assert actions(team=team_a.team.id, since="2000-01-01") == ["api_key.create", "api_key.revoke", "team.update"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday"}, "since"),
        ({"team": "abc"}, "team"),
        ({"colour": "red"}, "colour"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # before year 1 in UTC
        ({"team": "\u00b2"}, "team"),  # "²": str.isdigit() says yes, int() refuses
    ],
)
def test_bad_filters_are_400_naming_them(team_a, client_for, params, param):
    response = officer(team_a, client_for).get(EVENTS, params)

    assert_openai_error(response, 400, param=param)


def test_events_of_another_team_are_404(team_a, team_b, client_for):
    record(team_b)

    assert_hidden(
        officer(team_a, client_for),
        "get",
        f"{EVENTS}?team={team_b.team.id}",
        unchanged=[AuditEvent.objects.filter(team_id=team_b.team.id)],
    )


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MANAGER, Role.REVIEWER, Role.PROMPT_ENGINEER])
def test_members_without_the_compliance_role_are_refused(team_a, client_for, role):
    record(team_a)
    client = client_for(team_a.members[role])

    for url in (EVENTS, f"{EVENTS}?team={team_a.team.id}", VERIFY, EXPORT):
        assert_refused(client, "get", url, status=403, unchanged=[AuditExport])


def test_admins_have_the_compliance_rights(team_a, client_for):
    record(team_a)

    assert client_for(team_a.members[Role.ADMIN]).get(EVENTS).status_code == 200


def test_events_without_a_team_are_visible_to_superusers_only(team_a, client_for):
    teamless = audit_record(actor=None, action="auth.login_failed", metadata={"username": "ghost"})
    operator = UserFactory.create(is_superuser=True)

    officer_ids = [row["id"] for row in officer(team_a, client_for).get(EVENTS).json()["results"]]
    operator_ids = [row["id"] for row in client_for(operator).get(EVENTS).json()["results"]]

    assert teamless.id not in officer_ids
    assert teamless.id in operator_ids


def test_event_list_query_count_does_not_grow_with_rows(team_a, client_for, django_assert_max_num_queries):
    client = officer(team_a, client_for)
    for _ in range(30):
        record(team_a)

    with django_assert_max_num_queries(4):
        response = client.get(EVENTS, {"limit": 100})

    assert len(response.json()["results"]) >= 30


def test_api_key_can_read_events_with_the_compliance_role(team_a, key_client_for):
    record(team_a)
    client = key_client_for(team_a.application, role=Role.COMPLIANCE_OFFICER)

    assert client.get(EVENTS).status_code == 200
    assert_refused(key_client_for(team_a.application), "get", EVENTS, status=403, unchanged=[AuditExport])


# Verification ---------------------------------------------------------------------


def test_verify_reports_an_intact_chain(team_a, client_for):
    record(team_a)
    chain.seal_pending()

    report = officer(team_a, client_for).get(VERIFY).json()

    assert report["is_intact"] is True
    assert report["first_broken_sequence"] is None
    assert report["events_verified"] >= 1
    assert report["summary"].startswith("Audit chain intact")


def test_verify_reports_the_first_broken_link_as_a_clear_200(team_a, client_for):
    for _ in range(3):
        record(team_a)
    chain.seal_pending()
    with attacker_access():
        AuditEvent.objects.filter(sequence=2).update(action="edited")

    response = officer(team_a, client_for).get(VERIFY)

    assert response.status_code == 200
    report = response.json()
    assert (report["is_intact"], report["first_broken_sequence"]) == (False, 2)
    assert report["problem"] == "event #2 does not match its hash: its content was edited."


# Streamed export ------------------------------------------------------------------


def test_jsonl_export_streams_sealed_events_with_a_signed_manifest_trailer(team_a, team_b, client_for):
    client = officer(team_a, client_for)
    exporter = team_a.members[Role.COMPLIANCE_OFFICER]
    for index in range(3):
        record(team_a, after={"index": index})
    record(team_b)
    chain.seal_pending()
    head = chain.chain_head()

    response = client.get(EXPORT, {"format": "jsonl", "team": team_a.team.id})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    lines = body_lines(response)
    rows = [json.loads(line) for line in lines[:-1]]
    trailer = json.loads(lines[-1])
    assert [row["team_id"] for row in rows] == [team_a.team.id] * len(rows)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [row["after"] for row in rows if row["action"] == "test.action"] == [
        {"index": 0},
        {"index": 1},
        {"index": 2},
    ]
    manifest = trailer["manifest"]
    assert manifest["row_count"] == len(rows)
    assert manifest["sha256"] == hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    assert manifest["chain_head"] == {"sequence": head.sequence, "hash": head.hash}
    assert manifest["filters"] == {"team": team_a.team.id}
    assert manifest["exporter"]["user_id"] == exporter.id
    assert chain.signature_matches(manifest, trailer["signature"])
    # Each row's hash can be recomputed from the row itself.
    for row in rows:
        values = [row[name] for name in chain.CONTENT_FIELDS]
        values[0] = AuditEvent.objects.get(sequence=row["sequence"]).created_at
        assert chain.link_hash(row["previous_hash"], row["sequence"], values) == row["hash"]
    # The export is recorded, and its manifest is kept.
    audit_export = AuditExport.objects.get(pk=response["X-Audit-Export-Id"])
    assert (audit_export.status, audit_export.row_count, audit_export.manifest) == (
        ExportStatus.DONE,
        len(rows),
        trailer,
    )
    assert (
        AuditEvent.objects.filter(
            action=Action.AUDIT_EXPORT, target_id=str(audit_export.id), actor_user_id=exporter.id
        ).count()
        == 1
    )


def test_csv_export_has_a_header_and_its_manifest_at_the_export_url(team_a, client_for):
    client = officer(team_a, client_for)
    record(team_a, before={"role": "viewer"}, after={"role": "admin"})
    chain.seal_pending()

    response = client.get(EXPORT, {"format": "csv", "action": "test.action"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    content = b"".join(response.streaming_content)
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [(row["action"], json.loads(row["after"])) for row in rows] == [("test.action", {"role": "admin"})]
    detail = client.get(f"{EXPORTS}{response['X-Audit-Export-Id']}/").json()
    assert detail["manifest"]["manifest"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert detail["manifest"]["manifest"]["row_count"] == 1
    assert chain.signature_matches(detail["manifest"]["manifest"], detail["manifest"]["signature"])


def test_export_leaves_out_events_not_yet_sealed(team_a, client_for):
    record(team_a, "sealed.one")
    chain.seal_pending()
    record(team_a, "pending.one")

    lines = body_lines(officer(team_a, client_for).get(EXPORT, {"action": "pending.one"}))

    assert json.loads(lines[-1])["manifest"]["row_count"] == 0


@pytest.mark.parametrize(
    ("params", "param"), [({"format": "xml"}, "format"), ({"team": "x"}, "team"), ({"since": "soon"}, "since")]
)
def test_bad_export_format_or_filter_is_400_naming_it(team_a, client_for, params, param):
    assert_openai_error(officer(team_a, client_for).get(EXPORT, params), 400, param=param)
    assert AuditExport.objects.count() == 0


def test_export_of_another_team_is_404(team_a, team_b, client_for):
    assert_hidden(
        officer(team_a, client_for),
        "get",
        f"{EXPORT}?team={team_b.team.id}",
        unchanged=[AuditExport, AuditEvent.objects.filter(action=Action.AUDIT_EXPORT)],
    )


# Export jobs ----------------------------------------------------------------------


def test_export_job_writes_a_file_downloadable_by_the_teams_compliance_officers(
    team_a, client_for, django_capture_on_commit_callbacks, settings
):
    record(team_a)
    chain.seal_pending()
    client = officer(team_a, client_for)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(EXPORTS, {"team": team_a.team.id, "format": "jsonl"}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert len(callbacks) >= 1
    from compliance import services

    assert services.audit_export_run(export_id=response.json()["id"]) == "done"

    detail = client.get(f"{EXPORTS}{response.json()['id']}/").json()
    assert detail["status"] == "done"
    assert detail["progress_percent"] == 100
    download = client.get(detail["download_url"])
    content = b"".join(download.streaming_content)
    lines = content.splitlines(keepends=True)
    assert json.loads(lines[-1]) == detail["manifest"]
    assert detail["manifest"]["manifest"]["sha256"] == hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    # Another compliance officer of the team may download it; a viewer may not; another team cannot see it.
    colleague = UserFactory.create()
    team_a.team.memberships.create(user=colleague, role=Role.COMPLIANCE_OFFICER)
    assert client_for(colleague).get(detail["download_url"]).status_code == 200
    assert_refused(
        client_for(team_a.members[Role.VIEWER]), "get", detail["download_url"], status=403, unchanged=[AuditExport]
    )


def test_export_job_of_another_team_is_hidden(team_a, team_b, client_for):
    record(team_b)
    response = officer(team_b, client_for).post(EXPORTS, {"team": team_b.team.id}, format="json")
    url = f"{EXPORTS}{response.json()['id']}/"

    assert_hidden(officer(team_a, client_for), "get", url, unchanged=[AuditExport])
    assert_hidden(officer(team_a, client_for), "get", f"{url}download/", unchanged=[AuditExport])
    assert_hidden(officer(team_a, client_for), "post", EXPORTS, data={"team": team_b.team.id}, unchanged=[AuditExport])


def test_export_job_input_is_validated(team_a, client_for):
    client = officer(team_a, client_for)

    assert_openai_error(
        client.post(EXPORTS, {"team": team_a.team.id, "format": "xml"}, format="json"), 400, param="format"
    )
    assert_openai_error(
        client.post(EXPORTS, {"team": team_a.team.id, "colour": "red"}, format="json"), 400, param="colour"
    )
    assert_openai_error(client.post(EXPORTS, {"format": "csv"}, format="json"), 400, param="team")
    assert AuditExport.objects.count() == 0


def test_download_of_an_unfinished_export_says_so(team_a, client_for):
    client = officer(team_a, client_for)
    response = client.post(EXPORTS, {"team": team_a.team.id}, format="json")

    assert_openai_error(client.get(f"{EXPORTS}{response.json()['id']}/download/"), 400, code="export_not_ready")


# Retention ------------------------------------------------------------------------


def test_retention_policy_is_read_and_set_by_compliance_officers(team_a, client_for):
    client = officer(team_a, client_for)
    url = f"/api/v1/teams/{team_a.team.id}/retention/"

    assert client.get(url).json() == {"team_id": team_a.team.id, "call_content_days": None}
    assert client.put(url, {"call_content_days": 30}, format="json").json() == {
        "team_id": team_a.team.id,
        "call_content_days": 30,
    }
    assert RetentionPolicy.objects.get(team=team_a.team).call_content_days == 30
    event = AuditEvent.objects.get(action=Action.RETENTION_UPDATE)
    assert (event.before, event.after) == ({"call_content_days": None}, {"call_content_days": 30})


def test_retention_policy_refusals(team_a, team_b, client_for):
    url_a = f"/api/v1/teams/{team_a.team.id}/retention/"

    assert_refused(
        client_for(team_a.members[Role.VIEWER]),
        "put",
        url_a,
        data={"call_content_days": 1},
        status=403,
        unchanged=[RetentionPolicy],
    )
    assert_hidden(officer(team_b, client_for), "put", url_a, data={"call_content_days": 1}, unchanged=[RetentionPolicy])
    assert_openai_error(
        officer(team_a, client_for).put(url_a, {"call_content_days": 0}, format="json"), 400, param="call_content_days"
    )
    assert_openai_error(officer(team_a, client_for).put(url_a, {"days": 3}, format="json"), 400, param="days")
