"""Fast inserts of many new rows: COPY on PostgreSQL, `bulk_create` elsewhere.

Django's `bulk_create` on PostgreSQL binds every value into the SQL text on the client
(psycopg's client-side binding) after compiling each field; for the call recorder's
batches that was most of the cost of storing a call. COPY sends the rows in PostgreSQL's
text format, formatted by psycopg's C code. Rows go through the same field preparation
(`pre_save`, `get_db_prep_save`), so values are stored exactly as `bulk_create` would
store them; row triggers fire as for INSERT.

Unlike `bulk_create`, nothing is read back: automatic primary keys stay unset on the
objects (use it where the caller does not need them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from psycopg import sql


def _columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [
        field
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField))
    ]


def bulk_insert(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    fields = _columns(model)
    columns: list[sql.Composable] = [sql.Identifier(str(field.column)) for field in fields]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(model._meta.db_table), sql.SQL(", ").join(columns)
    )
    rows = [[field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields] for obj in objects]
    # Django's cursor (its thread checks and transaction state), its error mapping (a
    # duplicate key is an IntegrityError), psycopg's COPY underneath.
    started = time.monotonic()
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    if connection.queries_logged:  # COPY bypasses Django's cursor wrapper: log it as it would
        connection.queries_log.append(
            {
                "sql": f"{statement.as_string(connection.connection)} -- {len(rows)} rows",
                "time": f"{time.monotonic() - started:.3f}",
            }
        )
