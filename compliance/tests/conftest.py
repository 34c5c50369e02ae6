from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from accounts.caller import caller_for_user
from compliance import chain
from compliance.audit import audit_record
from compliance.models import AuditEvent


@contextmanager
def attacker_access() -> Iterator[None]:
    """Someone with superuser access to the database: on PostgreSQL, triggers are switched off
    (session_replication_role = replica) as an attacker could; SQLite has no trigger."""
    is_postgresql = connection.vendor == "postgresql"
    if is_postgresql:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        if is_postgresql:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def sealed_events(team_a: Any) -> Callable[[int], list[AuditEvent]]:
    """`count` events of team A, sealed into the chain, in sequence order."""

    def build(count: int) -> list[AuditEvent]:
        actor = caller_for_user(team_a.members["admin"])
        for index in range(count):
            audit_record(
                actor=actor,
                action="test.action",
                target_type="test.thing",
                target_id=str(index),
                team_id=team_a.team.id,
                after={"index": index, "note": "ünïcode ✓"},
            )
        chain.seal_pending()
        return list(AuditEvent.objects.filter(sequence__isnull=False).order_by("sequence"))

    return build
