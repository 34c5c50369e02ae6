"""The production setup of docs/database-roles.md: the application connects as a role that is
not a superuser and does not own the tables, and cannot get around the audit trail's rules."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from compliance import chain
from compliance.models import AuditCheckpoint, AuditEvent
from core.testing import requires_postgresql

pytestmark = [requires_postgresql("roles and privileges"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def app_connection() -> Iterator[psycopg.Connection[Any]]:
    """A connection to the test database as a new application role set up as the doc says
    (CREATE ROLE ... LOGIN, then `manage.py audit_grant_app_role` as the owner)."""
    role = f"controlplane_app_test_{secrets.token_hex(4)}"  # roles are cluster-wide: a name of its own
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    try:
        call_command("audit_grant_app_role", role)
        settings_dict = connection.settings_dict
        app = psycopg.connect(
            dbname=settings_dict["NAME"],
            user=role,
            host=settings_dict["HOST"] or "127.0.0.1",
            port=settings_dict["PORT"] or 5432,
            autocommit=True,
        )
        app.role = role  # type: ignore[attr-defined]  # for tests that act as it through Django
        try:
            yield app
        finally:
            app.close()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


def refused(app: psycopg.Connection[Any], statement: str, params: Any = None) -> str:
    with pytest.raises(psycopg.Error) as error_info:
        app.execute(statement, params)
    return str(error_info.value)


def test_the_application_role_records_seals_checkpoints_and_verifies(app_connection):
    for action in ("app.thing", "app.other"):
        app_connection.execute(
            "INSERT INTO compliance_auditevent (created_at, actor_type, actor_label, action, target_type, target_id,"
            " metadata, request_id, ip_address, chain_format, previous_hash, hash, seal_refusal)"
            " VALUES (now(), 'system', 'system', %s, '', '', '{}', '', '', 0, '', '', '')",
            [action],
        )

    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {app_connection.role}")  # the sealer, as the application's role
    try:
        sealed = chain.seal_pending()
        checkpoint = chain.checkpoint_create()
        report = chain.verify_chain()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")

    assert sealed == 2
    assert checkpoint is not None
    assert checkpoint.sequence == 2
    assert (report.is_intact, report.events_verified) == (True, 2), report.problems
    rows = app_connection.execute("SELECT sequence, action FROM compliance_auditevent ORDER BY sequence").fetchall()
    assert rows == [(1, "app.thing"), (2, "app.other")]


# What the application's role may not do to the audit trail, and the error that refuses it.
REFUSED_STATEMENTS = [
    ("UPDATE compliance_auditevent SET hash = %s WHERE sequence = 1", ["f" * 64], "sealed event 1 cannot be updated"),
    (
        "UPDATE compliance_auditevent SET action = 'edited' WHERE sequence = 1",
        None,
        "permission denied for table compliance_auditevent",
    ),
    ("DELETE FROM compliance_auditevent WHERE sequence = 3", None, "permission denied for table compliance_auditevent"),
    ("DELETE FROM compliance_auditcheckpoint", None, "permission denied for table compliance_auditcheckpoint"),
    ("TRUNCATE compliance_auditevent", None, "permission denied for table compliance_auditevent"),
    ("TRUNCATE compliance_auditcheckpoint", None, "permission denied for table compliance_auditcheckpoint"),
    (
        "ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only",
        None,
        "must be owner of table compliance_auditevent",
    ),
    (
        "SET session_replication_role = replica",
        None,
        'permission denied to set parameter "session_replication_role"',
    ),
]


def test_the_application_role_cannot_change_delete_truncate_or_unprotect_the_audit_trail(app_connection):
    for index in range(3):
        AuditEvent.objects.create(
            created_at=chain.timezone.now(), actor_type="system", action="owner.thing", metadata={"i": index}
        )
    chain.seal_pending()
    chain.checkpoint_create()
    before = list(AuditEvent.objects.order_by("id").values_list("id", "sequence", "action", "hash"))

    for statement, params, message in REFUSED_STATEMENTS:
        assert message in refused(app_connection, statement, params), statement
    assert "audit events are inserted pending" in refused(
        app_connection,
        "INSERT INTO compliance_auditevent (created_at, actor_type, actor_label, action, target_type, target_id,"
        " metadata, request_id, ip_address, chain_format, previous_hash, hash, sequence, seal_refusal)"
        " VALUES (now(), 'system', 'system', 'forged', '', '', '{}', '', '', 3, %s, %s, 4, '')",
        [before[-1][3], "f" * 64],
    )

    assert list(AuditEvent.objects.order_by("id").values_list("id", "sequence", "action", "hash")) == before
    assert AuditCheckpoint.objects.count() == 1
    assert chain.verify_chain().is_intact


def test_the_grant_command_prints_the_sql_of_the_doc(capsys):
    call_command("audit_grant_app_role", "app", "--print")

    printed = capsys.readouterr().out
    assert 'REVOKE ALL ON compliance_auditevent, compliance_auditcheckpoint FROM "app";' in printed
    assert (
        "GRANT UPDATE (sequence, chain_format, previous_hash, hash, sealed_at, seal_refusal) ON compliance_auditevent"
        ' TO "app";'
    ) in printed
