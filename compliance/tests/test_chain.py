"""The hash chain: sealing, and verification that catches every kind of tampering."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from compliance import chain
from compliance.audit import audit_record
from compliance.models import AuditCheckpoint, AuditEvent
from compliance.tests.conftest import attacker_access
from core.testing import requires_postgresql
from core.tests.threads import run_at_once

pytestmark = pytest.mark.django_db


def test_sealing_assigns_a_gapless_sequence_linked_by_hashes(sealed_events):
    events = sealed_events(5)

    assert [event.sequence for event in events] == [1, 2, 3, 4, 5]
    assert events[0].previous_hash == chain.GENESIS_HASH
    assert [event.previous_hash for event in events[1:]] == [event.hash for event in events[:-1]]
    assert all(len(event.hash) == 64 and event.sealed_at is not None for event in events)


def test_audit_record_writes_unsealed_and_a_later_seal_continues_the_chain(sealed_events, team_a):
    events = sealed_events(2)

    pending = audit_record(actor=None, action="system.thing", team_id=team_a.team.id)

    assert pending.sequence is None
    assert pending.hash == ""
    assert chain.seal_pending() == 1
    pending.refresh_from_db()
    assert pending.sequence == 3
    assert pending.previous_hash == events[-1].hash


def test_sealing_twice_seals_nothing_new(sealed_events):
    sealed_events(3)

    assert chain.seal_pending() == 0
    assert AuditEvent.objects.filter(sequence__isnull=True).count() == 0


def test_an_intact_chain_verifies(sealed_events):
    events = sealed_events(6)
    chain.checkpoint_create()

    report = chain.verify_chain()

    assert report.is_intact, report.problems
    assert report.events_verified == 6
    assert report.head_sequence == 6
    assert report.head_hash == events[-1].hash
    assert report.checkpoints_verified == 1
    assert report.broken_sequence is None


def test_verification_reads_in_chunks_smaller_than_the_chain(sealed_events):
    sealed_events(7)

    report = chain.verify_chain(chunk_size=2)

    assert report.is_intact
    assert report.events_verified == 7


def swap_events_3_and_4() -> None:
    AuditEvent.objects.filter(sequence=3).update(sequence=-3)
    AuditEvent.objects.filter(sequence=4).update(sequence=3)
    AuditEvent.objects.filter(sequence=-3).update(sequence=4)


# Rows changed behind the chain's back: (events sealed, the change, the first broken event, the
# problem reported, and whether that is the whole report).
TAMPERINGS = [
    pytest.param(
        5,
        lambda: AuditEvent.objects.filter(sequence=3).update(actor_label="someone else"),
        3,
        "event #3 does not match its hash",
        False,
        id="an edited field",
    ),
    pytest.param(
        4,
        lambda: AuditEvent.objects.filter(sequence=2).update(after={"index": 99, "note": "ünïcode ✓"}),
        2,
        "event #2 does not match its hash",
        False,
        id="an edited json value",
    ),
    pytest.param(
        5,
        lambda: AuditEvent.objects.filter(sequence=3).delete(),
        3,
        "event #3 missing: the sequence jumps to #4 (deleted rows).",
        True,
        id="a deleted row",
    ),
    pytest.param(5, swap_events_3_and_4, 3, "event #3 links to previous hash", False, id="swapped rows"),
]


@pytest.mark.parametrize(("sealed", "tamper", "broken_sequence", "problem", "is_whole_problem"), TAMPERINGS)
def test_a_tampered_row_is_reported_at_its_event(
    sealed_events, sealed, tamper, broken_sequence, problem, is_whole_problem
):
    sealed_events(sealed)
    with attacker_access():
        tamper()

    report = chain.verify_chain()

    assert not report.is_intact
    assert report.broken_sequence == broken_sequence
    if is_whole_problem:
        assert report.problem == problem
    else:
        assert problem in report.problem


def test_an_inserted_row_is_reported_even_with_a_correct_hash_of_its_own(sealed_events, team_a):
    events = sealed_events(5)
    with attacker_access():
        # Make room at #3, then insert a forged event whose own hash is computed correctly.
        for sequence in (5, 4, 3):
            AuditEvent.objects.filter(sequence=sequence).update(sequence=sequence + 1)
        forged = AuditEvent.objects.create(
            created_at=events[1].created_at,
            actor_type="system",
            actor_label="system",
            action="forged.event",
            team_id=team_a.team.id,
            metadata={},
        )
        values = AuditEvent.objects.filter(pk=forged.pk).values_list(*chain.CONTENT_FIELDS).get()
        AuditEvent.objects.filter(pk=forged.pk).update(
            sequence=3,
            chain_format=chain.CURRENT_CHAIN_FORMAT,
            previous_hash=events[1].hash,
            hash=chain.link_hash(events[1].hash, 3, values),
        )

    report = chain.verify_chain()

    assert not report.is_intact
    assert report.broken_sequence == 4
    assert "event #4 links to previous hash" in report.problem


def test_a_truncated_tail_is_caught_by_the_signed_checkpoint(sealed_events):
    sealed_events(5)
    checkpoint = chain.checkpoint_create()
    assert checkpoint is not None
    assert checkpoint.sequence == 5
    with attacker_access():
        AuditEvent.objects.filter(sequence__gte=4).delete()

    report = chain.verify_chain()

    assert not report.is_intact
    assert report.broken_sequence == 4
    assert "the chain ends at #3 but checkpoint" in report.problem
    assert "covers 5 events: the tail was truncated" in report.problem


def test_a_chain_rewritten_with_valid_hashes_is_caught_by_the_checkpoint(sealed_events):
    events = sealed_events(5)
    chain.checkpoint_create()
    with attacker_access():
        AuditEvent.objects.filter(sequence=2).update(action="rewritten")
        # Recompute every hash from #2 on, as an attacker who knows the algorithm would.
        previous = events[0].hash
        for sequence in range(2, 6):
            values = AuditEvent.objects.filter(sequence=sequence).values_list(*chain.CONTENT_FIELDS).get()
            current = chain.link_hash(previous, sequence, values)
            AuditEvent.objects.filter(sequence=sequence).update(previous_hash=previous, hash=current)
            previous = current

    report = chain.verify_chain()

    assert not report.is_intact
    assert report.broken_sequence == 5
    assert "checkpoint" in report.problem
    assert "rewritten" in report.problem


def test_a_forged_checkpoint_signature_is_reported(sealed_events):
    sealed_events(3)
    checkpoint = chain.checkpoint_create()
    assert checkpoint is not None
    with attacker_access():
        AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(sequence=2, head_hash="f" * 64)

    report = chain.verify_chain()

    assert not report.is_intact
    assert f"checkpoint {checkpoint.id} has an invalid signature" in report.problem


def test_a_checkpoint_signed_with_another_key_is_reported(sealed_events, settings):
    sealed_events(3)
    chain.checkpoint_create()
    settings.AUDIT_SIGNING_KEY = "another-key"

    report = chain.verify_chain()

    assert not report.is_intact
    assert "not the configured AUDIT_SIGNING_KEY" in report.problem


def test_a_checkpoint_is_made_only_when_the_head_moved(sealed_events, team_a):
    assert chain.checkpoint_create() is None  # empty chain
    sealed_events(2)
    first = chain.checkpoint_create()

    assert first is not None
    assert (first.sequence, first.head_hash) == (2, chain.chain_head().hash)
    assert chain.checkpoint_create() is None
    audit_record(actor=None, action="more", team_id=team_a.team.id)
    chain.seal_pending()
    second = chain.checkpoint_create()
    assert second is not None
    assert second.sequence == 3


def test_audit_verify_command_exits_0_when_intact(sealed_events):
    sealed_events(3)
    out = io.StringIO()

    call_command("audit_verify", stdout=out)

    assert "Audit chain intact: 3 events verified up to #3" in out.getvalue()


def test_audit_verify_command_exits_1_and_prints_the_first_broken_link(sealed_events):
    sealed_events(4)
    with attacker_access():
        AuditEvent.objects.filter(sequence=2).update(target_id="edited")
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify", stdout=out)

    assert exit_info.value.code == 1
    assert "Audit chain BROKEN at event #2: event #2 does not match its hash" in out.getvalue()


@requires_postgresql()
def test_the_trigger_rejects_update_and_delete_of_sealed_events(sealed_events):
    events = sealed_events(2)

    for attempt in (
        lambda: AuditEvent.objects.filter(pk=events[0].pk).update(action="edited"),
        lambda: AuditEvent.objects.filter(pk=events[0].pk).update(hash="0" * 64),
        lambda: AuditEvent.objects.filter(pk=events[1].pk).delete(),
        lambda: AuditCheckpoint.objects.filter(pk=chain.checkpoint_create().pk).delete(),  # type: ignore[union-attr]
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()

    assert chain.verify_chain().is_intact
    assert AuditEvent.objects.count() == 2


@requires_postgresql()
def test_the_trigger_lets_pending_events_be_sealed_but_not_edited(team_a):
    event = audit_record(actor=None, action="pending.thing", team_id=team_a.team.id)

    with pytest.raises(DatabaseError, match="may only be sealed"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="edited")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()

    assert chain.seal_pending() == 1
    assert AuditEvent.objects.get(pk=event.pk).action == "pending.thing"


@requires_postgresql()
def test_the_trigger_is_installed():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'compliance_auditevent'::regclass AND NOT tgisinternal"
            " ORDER BY tgname"
        )
        assert cursor.fetchall() == [
            ("compliance_auditevent_append_only",),
            ("compliance_auditevent_insert_pending",),
            ("compliance_auditevent_no_truncate",),
        ]


@requires_postgresql()
@pytest.mark.django_db(transaction=True)
def test_two_sealers_at_once_keep_one_gapless_chain(team_a):

    from django.db import connections

    for index in range(300):
        audit_record(actor=None, action="concurrent.thing", team_id=team_a.team.id, metadata={"index": index})
    sealed_counts: list[int] = []
    errors: list[BaseException] = []

    def sealer() -> None:
        try:
            sealed_counts.append(chain.seal_pending(batch_size=25))
        except Exception as error:  # noqa: BLE001 - collected and reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    run_at_once([sealer, sealer])

    assert errors == []
    assert sum(sealed_counts) == 300
    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True)) == list(range(1, 301))
    assert chain.verify_chain().is_intact
