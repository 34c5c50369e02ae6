"""`python manage.py audit_grant_app_role ROLE`: give the application's database role what it
needs, and on the audit tables no more (docs/database-roles.md).

Run it as the role that owns the tables (the one that runs `migrate`), after every `migrate`:
new tables need their grants. `--print` shows the SQL instead of running it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

# What sealing sets on a pending event (compliance/chain.py); the triggers check the rest.
SEALING_COLUMNS = ("sequence", "chain_format", "previous_hash", "hash", "sealed_at", "seal_refusal")
AUDIT_TABLES = ("compliance_auditevent", "compliance_auditcheckpoint")


def grant_statements(*, role: str, database: str) -> list[str]:
    """The SQL that lets `role` run the application: read and write every table, but on the
    audit tables only INSERT, SELECT and (events) UPDATE of the sealing columns."""
    quote = connection.ops.quote_name
    app, audit_tables = quote(role), ", ".join(AUDIT_TABLES)
    return [
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {app}",
        f"GRANT USAGE ON SCHEMA public TO {app}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {app}",
        f"REVOKE ALL ON {audit_tables} FROM {app}",
        f"GRANT SELECT, INSERT ON {audit_tables} TO {app}",
        f"GRANT UPDATE ({', '.join(SEALING_COLUMNS)}) ON compliance_auditevent TO {app}",
    ]


class Command(BaseCommand):
    help = (
        "Grant the application's (non-superuser) database role its privileges: everything on the "
        "application's tables, but only INSERT, SELECT and sealing on the audit tables. Run as the owner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="the application's database role (it must exist: CREATE ROLE ... LOGIN)")
        parser.add_argument("--print", action="store_true", help="print the SQL instead of running it")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("audit_grant_app_role is for PostgreSQL: SQLite has no roles.")
        statements = grant_statements(role=options["role"], database=connection.settings_dict["NAME"])
        if options["print"]:
            self.stdout.write(";\n".join(statements) + ";")
            return
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(self.style.SUCCESS(f"Granted {options['role']} the application's privileges."))
