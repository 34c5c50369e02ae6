"""Time-ordered UUIDs (version 7, RFC 9562) for rows whose ids are made before they are
written (call records are written in batches after the response), so that ordering by id
is ordering by creation time."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    milliseconds = time.time_ns() // 1_000_000
    random_a = int.from_bytes(os.urandom(2), "big") & 0x0FFF  # 12 bits
    random_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)  # 62 bits
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= random_a << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= random_b
    return uuid.UUID(int=value)
