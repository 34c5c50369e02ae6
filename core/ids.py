"""Time-ordered UUIDs (version 7, RFC 9562) for rows whose ids are made before they are
written (call records are written in batches after the response), so that ordering by id
is ordering by creation time."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime

MAX_ID = 2**63 - 1  # the largest value of a database id column (bigint)


def parse_whole_number(text: str, *, maximum: int = MAX_ID) -> int | None:
    """The whole number `text` spells in ASCII digits ("12"), or None. Unlike `str.isdigit()`
    followed by `int()`, "²" or "١٢" are not numbers here (int() would raise), and nothing
    above `maximum` is (a database id column would overflow): user input goes through this."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def uuid7(*, at: datetime | None = None) -> uuid.UUID:
    """A version 7 UUID made now, or carrying `at`'s milliseconds (a call ingested with its own
    time sorts by when it happened)."""
    milliseconds = time.time_ns() // 1_000_000 if at is None else int(at.timestamp() * 1000)
    random_a = int.from_bytes(os.urandom(2), "big") & 0x0FFF  # 12 bits
    random_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)  # 62 bits
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= random_a << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= random_b
    return uuid.UUID(int=value)
