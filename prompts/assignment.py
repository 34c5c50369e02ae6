"""Sticky variant assignment: the same subject gets the same variant in every process."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

_BUCKETS = 10_000


def bucket(*, experiment_id: int, subject: str) -> int:
    """A stable bucket in [0, 10000) from sha256(experiment id + subject)."""
    digest = hashlib.sha256(f"{experiment_id}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


def assign(*, experiment_id: int, subject: str, weights: Sequence[int]) -> int:
    """The index of the variant whose share of the buckets holds this subject's bucket."""
    total = sum(weights)
    point = bucket(experiment_id=experiment_id, subject=subject) * total / _BUCKETS
    cumulative = 0
    for index, weight in enumerate(weights):
        cumulative += weight
        if point < cumulative:
            return index
    return len(weights) - 1


def matches_segment(segment: Mapping[str, str], metadata: Mapping[str, object]) -> bool:
    """A subject takes part when its metadata equals every value the segment names."""
    return all(str(metadata.get(key)) == str(value) for key, value in segment.items())
