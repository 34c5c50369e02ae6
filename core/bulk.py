"""Fast inserts of many new rows: COPY on PostgreSQL, `bulk_create` elsewhere.

Django's `bulk_create` on PostgreSQL binds every value into the SQL text on the client
(psycopg's client-side binding) after compiling each field; for the call recorder's
batches that was most of the cost of storing a call. COPY sends the rows in PostgreSQL's
text format, formatted by psycopg's C code. Rows go through the same field preparation
(`pre_save`, `get_db_prep_save`), so values are stored exactly as `bulk_create` would
store them; row triggers fire as for INSERT.

Unlike `bulk_create`, nothing is read back: automatic primary keys stay unset on the
objects (use it where the caller does not need them).

Elsewhere (SQLite: development and the quick test run) rows PostgreSQL would refuse are
refused too, with PostgreSQL's message as a `DataError`: a string longer than its column, a
NUL character in text or JSON, an integer or decimal out of its column's range. Code that
writes through here (the call recorder) then fails on SQLite as it would in production.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import DataError, connection, models
from django.db.backends.base.operations import BaseDatabaseOperations
from psycopg import sql


def _columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [
        field
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField))
    ]


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_contains_nul(item) for item in value)
    return False


def _refuse_what_postgresql_refuses(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    ranges = BaseDatabaseOperations.integer_field_ranges  # what PostgreSQL's integer types hold
    for field in _columns(model):
        internal_type = field.get_internal_type()
        for obj in objects:
            value = getattr(obj, field.attname)
            if value is None:
                continue
            if isinstance(field, models.CharField | models.TextField) and isinstance(value, str):
                if "\x00" in value:
                    raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
                if field.max_length is not None and len(value) > field.max_length:
                    raise DataError(f"value too long for type character varying({field.max_length})")
            elif isinstance(field, models.JSONField) and _contains_nul(value):
                raise DataError("unsupported Unicode escape sequence: \\u0000 cannot be converted to text")
            elif internal_type in ranges and isinstance(value, int):
                lowest, highest = ranges[internal_type]
                if not lowest <= value <= highest:
                    raise DataError(f'value "{value}" is out of range for type {internal_type}')
            elif isinstance(field, models.DecimalField) and field.max_digits is not None:
                digits = field.max_digits - (field.decimal_places or 0)
                if abs(Decimal(str(value))) >= Decimal(10) ** digits:
                    raise DataError(f"numeric field overflow: {field.name} holds at most {digits} integer digits")


def bulk_insert(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    if not objects:
        return
    if connection.vendor != "postgresql":
        _refuse_what_postgresql_refuses(model, objects)
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
