"""Compliance pages: audit search, verification button, exports with progress, denied-access log, retention."""

from __future__ import annotations

import time

import pytest

from accounts.caller import caller_for_user
from accounts.types import Role
from compliance import chain
from compliance.audit import Action, audit_record
from compliance.models import AuditEvent, AuditExport, ExportStatus, RetentionPolicy
from compliance.tests.conftest import attacker_access
from core.testing import assert_hidden, assert_refused

pytestmark = pytest.mark.django_db


def record(team, action="test.action", **fields):
    return audit_record(actor=caller_for_user(team.members[Role.ADMIN]), action=action, team_id=team.team.id, **fields)


def text(response) -> str:
    return response.content.decode()


def test_compliance_page_shows_search_verification_exports_and_retention(team_a, team_b, page_client_for):
    record(team_a, "visible.action")
    record(team_b, "hidden.action")
    chain.seal_pending()

    response = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get("/compliance/")

    assert response.status_code == 200
    body = text(response)
    assert "visible.action" in body
    assert "hidden.action" not in body
    assert "Verify the audit chain now" in body
    assert "Retention of call content" in body
    assert "Team B" not in body


def test_compliance_page_tells_members_without_the_role_what_they_need(team_a, page_client_for):
    record(team_a, "secret.action")

    response = page_client_for(team_a.members[Role.VIEWER]).get("/compliance/")

    assert response.status_code == 200
    assert "compliance officer role" in text(response)
    assert "secret.action" not in text(response)


def test_search_partial_filters_with_htmx(team_a, page_client_for):
    record(team_a, "api_key.create")
    record(team_a, "team.update")

    response = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get(
        "/compliance/events/", {"action": "api_key.*"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert "<html" not in text(response)
    assert "api_key.create" in text(response)
    assert "team.update" not in text(response)


def test_search_with_a_bad_filter_is_400_naming_it(team_a, page_client_for):
    response = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get("/compliance/events/", {"since": "soon"})

    assert response.status_code == 400
    assert "since: &#x27;soon&#x27; is not a date" in text(response)


def test_search_of_another_team_is_404_and_without_the_role_403(team_a, team_b, page_client_for):
    assert_hidden(
        page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]),
        "get",
        f"/compliance/events/?team={team_b.team.id}",
        unchanged=[AuditExport],
    )
    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]), "get", "/compliance/events/", status=403, unchanged=[AuditExport]
    )


def test_search_page_query_count_does_not_grow_with_rows(team_a, page_client_for, django_assert_max_num_queries):
    client = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER])
    for _ in range(25):
        record(team_a)

    with django_assert_max_num_queries(6):
        response = client.get("/compliance/events/", HTTP_HX_REQUEST="true")

    assert text(response).count('id="event-') >= 25


def test_verify_button_reports_the_first_broken_link(team_a, page_client_for):
    for _ in range(3):
        record(team_a)
    chain.seal_pending()
    client = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER])

    intact = client.post("/compliance/verify/", HTTP_HX_REQUEST="true")
    with attacker_access():
        AuditEvent.objects.filter(sequence=2).delete()
    broken = client.post("/compliance/verify/", HTTP_HX_REQUEST="true")

    assert intact.status_code == 200
    assert "Audit chain intact" in text(intact)
    assert broken.status_code == 200
    assert "Audit chain BROKEN at event #2: event #2 missing" in text(broken)
    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]), "post", "/compliance/verify/", status=403, unchanged=[AuditExport]
    )


def test_denied_access_log_lists_refusals(team_a, client_for, page_client_for):
    client_for(team_a.members[Role.VIEWER]).post(
        f"/api/v1/applications/{team_a.application.id}/keys/", {"name": "x"}, format="json"
    )
    record(team_a, "other.action")

    response = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get("/compliance/denied/")

    assert response.status_code == 200
    assert "access.denied" in text(response)
    assert "other.action" not in text(response)


def test_export_form_refusals(team_a, team_b, page_client_for):
    officer = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER])

    bad = officer.post("/compliance/exports/", {"team": team_a.team.id, "format": "xml"})
    assert bad.status_code == 400
    assert "format: &#x27;xml&#x27; is not an export format" in text(bad)
    assert_hidden(officer, "post", "/compliance/exports/", data={"team": team_b.team.id}, unchanged=[AuditExport])
    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        "/compliance/exports/",
        data={"team": team_a.team.id},
        status=403,
        unchanged=[AuditExport],
    )


def test_retention_form_saves_and_refuses(team_a, team_b, page_client_for):
    officer = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER])

    saved = officer.post(f"/compliance/retention/{team_a.team.id}/", {"call_content_days": "90"})
    bad = officer.post(f"/compliance/retention/{team_a.team.id}/", {"call_content_days": "ninety"})

    assert saved.status_code == 200
    assert RetentionPolicy.objects.get(team=team_a.team).call_content_days == 90
    assert bad.status_code == 400
    assert "call_content_days: a whole number" in text(bad)
    assert_hidden(
        officer,
        "post",
        f"/compliance/retention/{team_b.team.id}/",
        data={"call_content_days": "1"},
        unchanged=[RetentionPolicy],
    )
    assert_refused(
        page_client_for(team_a.members[Role.VIEWER]),
        "post",
        f"/compliance/retention/{team_a.team.id}/",
        data={"call_content_days": "1"},
        status=403,
        unchanged=[RetentionPolicy],
    )


@pytest.mark.django_db(transaction=True)
def test_export_job_runs_on_a_real_worker_and_is_downloadable(team_a, page_client_for, celery_worker):
    for _ in range(5):
        record(team_a)
    chain.seal_pending()
    client = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER])

    response = client.post("/compliance/exports/", {"team": team_a.team.id, "format": "csv"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    audit_export = AuditExport.objects.get()
    deadline = time.monotonic() + 90  # the solo worker may first drain tasks other tests queued
    while audit_export.status != ExportStatus.DONE and time.monotonic() < deadline:
        time.sleep(0.2)
        audit_export.refresh_from_db()

    assert audit_export.status == ExportStatus.DONE
    assert audit_export.manifest is not None
    assert audit_export.manifest["manifest"]["row_count"] == audit_export.row_count >= 5
    download = client.get(f"/compliance/exports/{audit_export.id}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"sequence,chain_format,created_at,actor_type")
    assert AuditEvent.objects.filter(action=Action.AUDIT_EXPORT, target_id=str(audit_export.id)).count() == 1


def test_the_exports_table_shows_each_manifest_as_verifiable_json(team_a, client_for, page_client_for):
    import html
    import json
    import re

    record(team_a, after={"ratio": 1e-05})
    chain.seal_pending()
    officer = team_a.members[Role.COMPLIANCE_OFFICER]
    streamed = client_for(officer).get("/api/v1/audit/export/", {"format": "jsonl", "team": team_a.team.id})
    b"".join(streamed.streaming_content)
    audit_export = AuditExport.objects.get()

    body = text(page_client_for(officer).get("/compliance/exports/"))

    [shown] = re.findall(r"<summary>manifest \(JSON\)</summary><pre><code>(.*?)</code></pre>", body, re.DOTALL)
    signed = json.loads(html.unescape(shown))
    assert signed == audit_export.manifest
    assert chain.signature_matches(signed["manifest"], signed["signature"])
    assert f"<code>{html.escape(json.dumps({'team': team_a.team.id}))}</code>" in body
