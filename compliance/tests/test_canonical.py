"""The chain's canonical form (RFC 8785) and its formats: older events keep verifying."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
import rfc8785
from django.utils import timezone

from accounts.caller import caller_for_user
from accounts.types import Role
from compliance import chain
from compliance.audit import audit_record
from compliance.models import AuditEvent
from compliance.tests.conftest import attacker_access

TRICKY_VALUES = [
    1e-05,
    1.0,
    -0.0,
    1e21,
    1e-7,
    0.1,
    123456789.125,
    5e-324,
    1.7976931348623157e308,
    2**53 - 1,
    -(2**53) + 1,
    {"é": 1, "z": 2, "\ue000": 3, "😀": 4, "A": [1.5, {"b": None, "a": True}]},
    {"nested": {"deep": [[], {}, "", 0, False]}},
    '\u2028\u2029\x7f\x00\x1f"\\/',
]


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=repr)
def test_canonical_json_is_rfc8785(value):
    assert chain.canonical_json(value) == rfc8785.dumps(value)


def test_integers_beyond_the_exact_range_are_canonicalised_as_their_digits():
    payload = {"max_tokens": 9223372036854775808, "small": [2**53, -(2**53)], "huge": 10**30}

    assert chain.canonical_json(payload) == rfc8785.dumps(
        {"max_tokens": "9223372036854775808", "small": [str(2**53), str(-(2**53))], "huge": str(10**30)}
    )


def test_the_fast_path_writes_every_code_point_as_rfc8785_does():
    code_points = [point for point in range(0x110000) if not 0xD800 <= point <= 0xDFFF]
    for start in range(0, len(code_points), 8192):
        text = "".join(map(chr, code_points[start : start + 8192]))
        value = {"key": text, "list": [text]}
        assert chain._orjson_is_canonical(value)
        assert chain.canonical_json(value) == rfc8785.dumps(value)


def _random_json(generator: random.Random, depth: int = 0) -> Any:
    choice = generator.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return generator.choice([None, True, False])
    if choice == 1:
        return generator.randint(-(2**53) + 1, 2**53 - 1)
    if choice == 2:
        return generator.choice([generator.random() * 10 ** generator.randint(-30, 30), float(generator.randint(0, 9))])
    if choice in (3, 4, 5):
        ranges = [(0, 0x7F), (0x80, 0xD7FF), (0xE000, 0x10FFFF)]
        return "".join(chr(generator.randint(*generator.choice(ranges))) for _ in range(generator.randrange(6)))
    if choice in (6, 7):
        return [_random_json(generator, depth + 1) for _ in range(generator.randrange(4))]
    keys = ["a", "B", "é", "\ue001", "😀", "_", "aa", "1"]
    return {generator.choice(keys): _random_json(generator, depth + 1) for _ in range(generator.randrange(4))}


def test_random_values_are_canonicalised_as_rfc8785_does():
    generator = random.Random(8785)
    for _ in range(3000):
        value = _random_json(generator)
        assert chain.canonical_json(value) == rfc8785.dumps(value), value


def test_a_format_2_hash_is_sha256_of_rfc8785_of_the_exported_row():
    created_at = "2025-03-04T05:06:07.000008+00:00"
    values = [created_at, "user", 7, None, "user ada", "x.change", "thing", "9", 3, None, None]
    values += [{"ratio": 1e-05}, {"n": 1.0}, "req-1", "127.0.0.1"]
    row: dict[str, Any] = dict(zip(chain.CONTENT_FIELDS, values, strict=True)) | {"sequence": 12, "chain_format": 2}

    expected = hashlib.sha256(b"f" * 64 + b"\n" + rfc8785.dumps(row)).hexdigest()

    assert chain.link_hash("f" * 64, 12, values, chain_format=2) == expected
    assert b'"ratio":0.00001' in chain.canonical_content(12, values, chain_format=2)
    assert chain.link_hash("f" * 64, 12, values, chain_format=1) != expected


# Chain formats on a real database -------------------------------------------------


def seal_as_format_1(count: int, team, chain_format: int = 1) -> None:
    """What the sealer did before format 2 (or before format 3, with chain_format=2)."""
    actor = caller_for_user(team.members[Role.ADMIN])
    for index in range(count):
        audit_record(actor=actor, action="legacy.action", team_id=team.team.id, after={"ratio": 1e-05, "index": index})
    head = chain.chain_head()
    pending = list(
        AuditEvent.objects.filter(sequence__isnull=True).order_by("id").values_list("id", *chain.CONTENT_FIELDS)
    )
    links = chain.chain_rows(
        (row[1:] for row in pending), start_sequence=head.sequence, start_hash=head.hash, chain_format=chain_format
    )
    for row, (sequence, previous, current) in zip(pending, links, strict=True):
        AuditEvent.objects.filter(pk=row[0]).update(
            sequence=sequence, chain_format=chain_format, previous_hash=previous, hash=current, sealed_at=timezone.now()
        )


@pytest.mark.django_db
def test_events_of_formats_1_and_2_keep_verifying_and_new_events_are_sealed_with_format_3(team_a):
    seal_as_format_1(3, team_a)
    chain.checkpoint_create()
    seal_as_format_1(1, team_a, chain_format=2)
    for index in range(2):
        audit_record(actor=None, action="new.action", team_id=team_a.team.id, after={"ratio": 1e-05, "i": index})

    assert chain.seal_pending() == 2
    report = chain.verify_chain()

    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", "chain_format")) == [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 3),
        (6, 3),
    ]
    assert (report.is_intact, report.events_verified, report.checkpoints_verified) == (True, 6, 1), report.problems
    # The two formats hash the same content differently (1e-05 is where orjson and json.dumps disagree).
    fourth = AuditEvent.objects.filter(sequence=4).values_list(*chain.CONTENT_FIELDS).get()
    assert chain.link_hash("0" * 64, 4, fourth, chain_format=1) != chain.link_hash("0" * 64, 4, fourth)


@pytest.mark.django_db
def test_relabelling_an_event_to_an_older_format_is_reported(team_a):
    seal_as_format_1(2, team_a)
    for _ in range(2):
        audit_record(actor=None, action="new.action", team_id=team_a.team.id)
    chain.seal_pending()
    fourth = AuditEvent.objects.get(sequence=4)
    values = AuditEvent.objects.filter(sequence=4).values_list(*chain.CONTENT_FIELDS).get()
    with attacker_access():
        # Re-hashed correctly in format 1, as someone who wants the weaker format would.
        AuditEvent.objects.filter(sequence=4).update(
            chain_format=1, hash=chain.link_hash(fourth.previous_hash, 4, values, chain_format=1)
        )

    report = chain.verify_chain()

    assert not report.is_intact
    assert report.broken_sequence == 4
    assert report.problem == (
        "event #4 uses chain format 1 after events of format 3: formats never go back (the event was relabelled)."
    )


@pytest.mark.django_db
def test_an_event_naming_an_unknown_format_is_reported(sealed_events):
    sealed_events(2)
    with attacker_access():
        AuditEvent.objects.filter(sequence=2).update(chain_format=9)

    report = chain.verify_chain()

    assert (report.is_intact, report.broken_sequence) == (False, 2)
    assert report.problem == "event #2 names chain format 9, which does not exist."


@pytest.mark.django_db
def test_sealing_may_set_the_format_but_a_sealed_event_keeps_it(sealed_events):
    from django.db import DatabaseError, connection, transaction

    [event] = sealed_events(1)
    assert event.chain_format == chain.CURRENT_CHAIN_FORMAT
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(chain_format=1)
