"""Time-ordered ids, and whole numbers from user input."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from core.ids import MAX_ID, parse_whole_number, uuid7


def test_uuid7_has_version_and_variant_and_embeds_the_time():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000

    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_uuid7_at_a_given_time_carries_its_milliseconds():
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)

    value = uuid7(at=at)

    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == int(at.timestamp() * 1000)
    assert uuid7(at=at) != value  # the rest is random


def test_uuid7_orders_by_creation_time_across_milliseconds():
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()

    assert first < second
    assert len({uuid7() for _ in range(10_000)}) == 10_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (str(MAX_ID), MAX_ID),
        (str(MAX_ID + 1), None),  # past a bigint column
        ("9" * 30, None),
        ("²", None),  # str.isdigit() is true for these; int() raises on them
        ("١٢", None),  # Arabic-Indic digits: int() would accept them; not an id in a URL
        ("", None),
        ("-1", None),
        (" 1", None),
        ("1.0", None),
    ],
)
def test_only_ascii_digits_within_the_maximum_are_whole_numbers(text, expected):
    assert parse_whole_number(text) == expected


def test_a_smaller_maximum_bounds_the_value():
    assert [parse_whole_number(text, maximum=100) for text in ("100", "101", "1000")] == [100, None, None]
