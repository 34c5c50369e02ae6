"""The audit trail against a database insider (issue 12.4): a keyed chain, signed heads kept
outside the database, backdated inserts refused, and triggers on INSERT and TRUNCATE."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from pathlib import Path

import pytest
import rfc8785
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from accounts.tests.factories import UserFactory
from accounts.types import Role
from compliance import chain
from compliance.audit import audit_record
from compliance.models import AuditCheckpoint, AuditEvent
from compliance.tests.conftest import attacker_access
from core.testing import requires_postgresql

pytestmark = pytest.mark.django_db


def empty_audit_tables() -> None:
    """What the insider did: TRUNCATE both tables (DELETE on SQLite, which has no TRUNCATE)."""
    with attacker_access(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE compliance_auditevent, compliance_auditcheckpoint")
        else:
            cursor.execute("DELETE FROM compliance_auditevent")
            cursor.execute("DELETE FROM compliance_auditcheckpoint")


def snapshot() -> list[tuple]:
    return list(AuditEvent.objects.order_by("id").values_list("id", "sequence", "hash", "seal_refusal"))


# The keyed chain (format 3) ------------------------------------------------------------


def test_new_events_are_sealed_with_hmac_over_the_rfc8785_row(sealed_events, settings):
    [first, second] = sealed_events(2)
    values = AuditEvent.objects.filter(pk=second.pk).values_list(*chain.CONTENT_FIELDS).get()
    row = dict(zip(chain.CONTENT_FIELDS, values, strict=True))
    row |= {"created_at": chain.format_time(row["created_at"]), "sequence": 2, "chain_format": 3}

    expected = hmac.new(
        settings.AUDIT_SIGNING_KEY.encode(), first.hash.encode() + b"\n" + rfc8785.dumps(row), hashlib.sha256
    ).hexdigest()

    assert (second.chain_format, second.hash) == (3, expected)


def append_forged_event(team_id: int, *, chain_format: int, key: str | None = None) -> None:
    """An INSERT of a sealed event at the end of the chain, its hash computed by the published
    algorithm (format 3 with a guessed key, since the insider does not hold the real one)."""
    head = chain.chain_head()
    with attacker_access():
        forged = AuditEvent.objects.create(
            created_at=timezone.now(), actor_type="system", actor_label="system", action="forged.grant", team_id=team_id
        )
        values = AuditEvent.objects.filter(pk=forged.pk).values_list(*chain.CONTENT_FIELDS).get()
        content = chain.canonical_content(head.sequence + 1, values, chain_format=chain_format)
        message = head.hash.encode() + b"\n" + content
        forged_hash = (
            hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
            if key is not None
            else hashlib.sha256(message).hexdigest()
        )
        AuditEvent.objects.filter(pk=forged.pk).update(
            sequence=head.sequence + 1,
            chain_format=chain_format,
            previous_hash=head.hash,
            hash=forged_hash,
            sealed_at=timezone.now(),
        )


def test_a_sealed_event_appended_with_a_guessed_key_is_reported(sealed_events, team_a):
    sealed_events(3)
    append_forged_event(team_a.team.id, chain_format=3, key="a guess at the key")

    report = chain.verify_chain()

    assert (report.is_intact, report.broken_sequence) == (False, 4)
    assert report.problem == "event #4 does not match its hash: its content was edited."


def test_a_sealed_event_appended_with_a_correct_unkeyed_hash_is_reported(sealed_events, team_a):
    sealed_events(3)
    append_forged_event(team_a.team.id, chain_format=2)  # sha256 needs no key: a valid format-2 link

    report = chain.verify_chain()

    assert (report.is_intact, report.broken_sequence) == (False, 4)
    assert report.problem == (
        "event #4 uses chain format 2 after events of format 3: formats never go back (the event was relabelled)."
    )


@requires_postgresql()
def test_the_trigger_refuses_the_insert_of_an_event_already_sealed(sealed_events, team_a):
    events = sealed_events(2)
    before = snapshot()

    with pytest.raises(DatabaseError, match="audit events are inserted pending"), transaction.atomic():
        AuditEvent.objects.create(
            created_at=timezone.now(),
            actor_type="system",
            action="forged.grant",
            team_id=team_a.team.id,
            sequence=3,
            chain_format=3,
            previous_hash=events[-1].hash,
            hash="f" * 64,
            sealed_at=timezone.now(),
        )

    assert snapshot() == before
    assert chain.verify_chain().is_intact


# Signed heads outside the database -----------------------------------------------------


def test_every_seal_appends_a_signed_head_to_the_head_file(sealed_events, audit_head_file, settings):
    events = sealed_events(3)

    lines = Path(audit_head_file).read_text().splitlines()
    signed = json.loads(lines[-1])

    assert len(lines) == 1
    assert signed["head"] | {"created_at": "-"} == {
        "kind": "audit-head",
        "sequence": 3,
        "head_hash": events[-1].hash,
        "created_at": "-",
        "key_id": chain.signing_key_id(),
    }
    assert signed["signature"] == chain.sign(signed["head"])


def test_truncating_both_audit_tables_is_reported(sealed_events, audit_head_file):
    sealed_events(5)
    chain.checkpoint_create()
    empty_audit_tables()

    report = chain.verify_chain()

    assert (report.is_intact, report.broken_sequence, report.events_verified) == (False, 1, 0)
    assert report.problem.startswith(
        f"the database holds 0 sealed events but the signed head written to {audit_head_file} at "
    )
    assert report.problem.endswith(
        "counts 5: events were deleted or the audit tables truncated. "
        "(Only if this database was reset on purpose: move that file away.)"
    )
    assert report.summary.startswith("Audit chain BROKEN at event #1: the database holds 0 sealed events")


def test_deleting_the_events_sealed_after_the_last_checkpoint_is_reported(sealed_events, team_a):
    sealed_events(3)
    chain.checkpoint_create()
    for index in range(2):
        audit_record(actor=None, action="after.checkpoint", team_id=team_a.team.id, metadata={"index": index})
    assert chain.seal_pending() == 2
    with attacker_access():
        AuditEvent.objects.filter(sequence__gte=4).delete()

    report = chain.verify_chain()

    assert (report.is_intact, report.broken_sequence, report.checkpoints_verified) == (False, 4, 1)
    assert "the database holds 3 sealed events but the signed head written to" in report.problem
    assert "counts 5: events were deleted" in report.problem


def test_a_head_file_line_with_a_forged_signature_is_reported(sealed_events, audit_head_file):
    sealed_events(2)
    with open(audit_head_file, "a") as handle:
        payload = chain.head_payload(
            sequence=1, head_hash="0" * 64, created_at="2030-01-01T00:00:00.000000+00:00", key_id=chain.signing_key_id()
        )
        handle.write(json.dumps({"head": payload, "signature": "f" * 64}) + "\n")

    report = chain.verify_chain()

    assert (report.is_intact, report.broken_sequence) == (False, None)
    assert report.problems == [
        f"a head in {audit_head_file} (#1, 2030-01-01T00:00:00.000000+00:00) has an invalid signature "
        "(forged or altered)."
    ]
    assert report.summary == f"Audit chain BROKEN: {report.problems[0]}"


def test_an_intact_chain_matches_its_newest_signed_head(sealed_events):
    events = sealed_events(4)

    report = chain.verify_chain()

    assert report.is_intact, report.problems
    assert report.signed_head is not None
    assert (report.signed_head.sequence, report.signed_head.head_hash) == (4, events[-1].hash)
    assert "the newest signed head outside the database matches" in report.summary


def test_the_audit_page_shows_a_compliance_officer_the_signed_head_without_the_system_wide_count(
    sealed_events, team_a, page_client_for
):
    events = sealed_events(2)
    operator = UserFactory.create(is_superuser=True)

    page = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get("/compliance/").content.decode()
    operator_page = page_client_for(operator).get("/compliance/").content.decode()

    written = chain.head_last_written()
    assert written is not None
    # The chain is one for every team: its length and hashes are the operator's to see.
    assert (
        "Signed head outside the database (the last written to the head file):\n"
        f"  written {written.created_at},\n"
        "  <strong>signature valid</strong>."
    ) in page
    assert events[-1].hash not in page
    assert "Chain head: event #" not in page
    assert (
        "Signed head outside the database (the last written to the head file):\n"
        f"  2 events, head <code>{events[-1].hash}</code>, written {written.created_at},\n"
        "  <strong>signature valid</strong>."
    ) in operator_page
    assert "Chain head: event #2" in operator_page


def test_the_audit_page_says_when_the_last_signed_head_is_not_valid(sealed_events, team_a, page_client_for, settings):
    sealed_events(1)
    settings.AUDIT_SIGNING_KEY = "another key"

    page = page_client_for(team_a.members[Role.COMPLIANCE_OFFICER]).get("/compliance/").content.decode()

    assert "signature NOT valid: it was signed with key " in page


# Backdated inserts --------------------------------------------------------------------


def insert_backdated(team_id: int, *, seconds: float) -> AuditEvent:
    """A plain INSERT of a pending event dated `seconds` ago (no trigger stops a pending insert)."""
    return AuditEvent.objects.create(
        created_at=timezone.now() - datetime.timedelta(seconds=seconds),
        actor_type="user",
        actor_label="ada",
        action="auth.login",
        team_id=team_id,
    )


def test_the_sealer_refuses_an_event_backdated_three_days_and_verification_reports_it(sealed_events, team_a):
    sealed_events(2)
    backdated = insert_backdated(team_a.team.id, seconds=3 * 86400)
    later = audit_record(actor=None, action="later.thing", team_id=team_a.team.id)

    assert chain.seal_pending() == 1
    backdated.refresh_from_db()
    later.refresh_from_db()
    report = chain.verify_chain()

    assert (backdated.sequence, backdated.hash, later.sequence) == (None, "", 3)
    assert backdated.seal_refusal.startswith(
        f"dated {chain.format_time(backdated.created_at)}, more than 300 s before "
    )
    assert backdated.seal_refusal.endswith(
        "the time of events already sealed: inserted backdated (tampering, or a clock set back), so not sealed "
        "into the chain"
    )
    assert (report.is_intact, report.broken_sequence, report.events_verified, report.pending_events) == (
        False,
        None,
        3,
        0,
    )
    assert report.refused_events == 1
    assert (
        report.problem == f"event id {backdated.id} (auth.login) was refused by the sealer: {backdated.seal_refusal}."
    )
    assert chain.seal_pending() == 0  # it is not tried again


def test_an_event_dated_a_little_before_the_sealed_chain_is_sealed(sealed_events, team_a):
    sealed_events(2)
    slightly_late = insert_backdated(team_a.team.id, seconds=60)  # a transaction that took a minute to commit

    assert chain.seal_pending() == 1
    slightly_late.refresh_from_db()

    assert (slightly_late.sequence, slightly_late.seal_refusal) == (3, "")
    assert chain.verify_chain().is_intact


def test_an_llm_call_recorded_late_is_dated_when_recorded(team_a):
    from compliance.audit import audit_record_calls
    from compliance.tests.test_recording import make_call

    audit_record(actor=None, action="first.thing", team_id=team_a.team.id)
    chain.seal_pending()
    call = make_call(team_a)
    call.created_at = timezone.now() - datetime.timedelta(hours=2)  # spooled while the database was down
    started = timezone.now()

    audit_record_calls(calls=[call])
    assert chain.seal_pending() == 1

    event = AuditEvent.objects.get(action="llm.call")
    assert (event.sequence, event.seal_refusal) == (2, "")
    assert event.created_at >= started


@requires_postgresql()
def test_a_refused_event_cannot_be_changed_to_be_sealed_after_all(sealed_events, team_a):
    sealed_events(1)
    backdated = insert_backdated(team_a.team.id, seconds=3 * 86400)
    chain.seal_pending()
    before = snapshot()

    with pytest.raises(DatabaseError, match="was refused by the sealer and cannot change"), transaction.atomic():
        AuditEvent.objects.filter(pk=backdated.pk).update(seal_refusal="")

    assert snapshot() == before


# TRUNCATE ----------------------------------------------------------------------------


def truncate_as_any_session(table: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        # The test suite's own role may truncate (conftest.py): as any other session, it may not.
        cursor.execute("SET LOCAL controlplane.allow_audit_truncate = 'off'")
        cursor.execute(f"TRUNCATE {table}")


@requires_postgresql()
@pytest.mark.parametrize("table", ["compliance_auditevent", "compliance_auditcheckpoint"])
def test_the_trigger_refuses_truncate(sealed_events, table):
    sealed_events(2)
    chain.checkpoint_create()

    with pytest.raises(DatabaseError, match=f"the audit trail is append-only: {table} cannot be truncated"):
        truncate_as_any_session(table)

    assert (AuditEvent.objects.count(), AuditCheckpoint.objects.count()) == (2, 1)
    assert chain.verify_chain().is_intact
