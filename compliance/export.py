"""Audit exports: JSONL or CSV, produced in constant memory, with a signed manifest.

Rows are read in chunks (`.iterator(chunk_size=...)`, a server-side cursor on PostgreSQL),
encoded a chunk at a time and hashed as they go. Every row carries its sequence number,
chain format, previous hash and hash, so a reader can recompute each row's hash
(compliance/chain.py) and, for an unfiltered export, the whole chain: compliance/verify_export.py,
which imports nothing from the project, does that (docs/audit-verification.md).

The manifest (row count, sha256 of the file, chain head, filters, exporter, times) is
signed like the checkpoints (HMAC-SHA256 with AUDIT_SIGNING_KEY). Where it goes:
- JSONL: a final trailer line `{"manifest": {...}, "signature": "..."}`; the sha256 covers
  every byte before that line.
- CSV (and JSONL too): `GET /api/v1/audit/exports/{id}/` returns the manifest and signature
  once the stream has ended (the id is in the `X-Audit-Export-Id` response header), and an
  export job writes `<file>.manifest.json` next to the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from compliance.chain import CONTENT_FIELDS, ChainHead, format_time, sign, signing_key_id
from compliance.models import AuditEvent, AuditExport, ExportFormat

# Everything an auditor needs to re-hash the chain: derived from the hashed fields, so that a
# field added to the hash is exported too.
EXPORT_COLUMNS: tuple[str, ...] = ("sequence", "chain_format", *CONTENT_FIELDS, "previous_hash", "hash")
_JSON_COLUMNS = frozenset({"before", "after", "metadata"})
_CREATED_AT = EXPORT_COLUMNS.index("created_at")
_JSON_INDEXES = tuple(EXPORT_COLUMNS.index(name) for name in _JSON_COLUMNS)
READ_CHUNK_ROWS = 5000
WRITE_CHUNK_ROWS = 2000


def export_queryset(events: QuerySet[AuditEvent], head: ChainHead) -> QuerySet[AuditEvent]:
    """Sealed events up to the head the manifest names, in chain order."""
    return events.filter(sequence__isnull=False, sequence__lte=head.sequence).order_by("sequence")


def _rows(queryset: QuerySet[AuditEvent]) -> Iterator[tuple[Any, ...]]:
    return queryset.values_list(*EXPORT_COLUMNS).iterator(chunk_size=READ_CHUNK_ROWS)


# PostgreSQL writes JSONL rows itself (row_to_json, in C): the same keys in the same order, the
# time formatted as in the chain, JSON columns in PostgreSQL's own spacing. Several times
# faster than decoding and re-encoding every row in Python.
_POSTGRESQL_CREATED_AT = (
    """to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS created_at"""
)
_POSTGRESQL_JSONL_SQL = (
    "SELECT row_to_json(t)::text FROM (SELECT "  # noqa: S608 - column names are constants
    + ", ".join(_POSTGRESQL_CREATED_AT if name == "created_at" else name for name in EXPORT_COLUMNS)
    + " FROM ({inner}) AS events ORDER BY sequence) AS t"
)


def _postgresql_jsonl_batches(queryset: QuerySet[AuditEvent]) -> Iterator[list[str]]:
    inner, params = queryset.order_by().values_list(*EXPORT_COLUMNS).query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(_POSTGRESQL_JSONL_SQL.format(inner=inner), params)
        while rows := cursor.fetchmany(WRITE_CHUNK_ROWS):
            yield [row[0] for row in rows]


def _jsonl_lines(rows: list[tuple[Any, ...]]) -> str:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines = []
    for row in rows:
        record = dict(zip(EXPORT_COLUMNS, row, strict=True))
        record["created_at"] = format_time(row[_CREATED_AT])
        lines.append(dumps(record))
    lines.append("")
    return "\n".join(lines)


def _csv_lines(rows: list[tuple[Any, ...]], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(EXPORT_COLUMNS)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
    for row in rows:
        values = list(row)
        values[_CREATED_AT] = format_time(row[_CREATED_AT])
        for index in _JSON_INDEXES:
            values[index] = "" if row[index] is None else dumps(row[index])
        writer.writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


def manifest_build(*, export: AuditExport, row_count: int, sha256: str, head: ChainHead) -> dict[str, Any]:
    return {
        "kind": "audit-export-manifest",
        "export_id": str(export.id),
        "format": export.format,
        "row_count": row_count,
        "sha256": sha256,
        "chain_head": {"sequence": head.sequence, "hash": head.hash},
        "filters": export.filters,
        "exporter": {
            "label": export.exporter_label,
            "user_id": export.exporter_user_id,
            "api_key_id": export.exporter_api_key_id,
        },
        "started_at": format_time(export.created_at),
        "finished_at": format_time(timezone.now()),
        "key_id": signing_key_id(),
    }


def signed_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    return {"manifest": manifest, "signature": sign(manifest)}


def generate(
    *,
    export: AuditExport,
    queryset: QuerySet[AuditEvent],
    head: ChainHead,
    on_progress: Callable[[int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[bytes]:
    """The export's bytes, chunk by chunk; the signed manifest is passed to `on_done` at the end
    (and, for JSONL, written as the trailer line)."""
    digest = hashlib.sha256()
    row_count = 0
    batch: list[tuple[Any, ...]] = []
    is_csv = export.format == ExportFormat.CSV

    def encode(rows: list[tuple[Any, ...]], *, first: bool) -> bytes:
        text = _csv_lines(rows, header=first) if is_csv else _jsonl_lines(rows)
        data = text.encode()
        digest.update(data)
        return data

    is_first = True
    if not is_csv and connection.vendor == "postgresql":
        for lines in _postgresql_jsonl_batches(queryset):
            lines.append("")
            data = "\n".join(lines).encode()
            digest.update(data)
            yield data
            row_count += len(lines) - 1
            if on_progress is not None:
                on_progress(row_count)
        signed = signed_manifest(
            manifest_build(export=export, row_count=row_count, sha256=digest.hexdigest(), head=head)
        )
        if on_done is not None:
            on_done(signed)
        yield (json.dumps(signed, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        return
    for row in _rows(queryset):
        batch.append(row)
        if len(batch) >= WRITE_CHUNK_ROWS:
            yield encode(batch, first=is_first)
            is_first = False
            row_count += len(batch)
            batch = []
            if on_progress is not None:
                on_progress(row_count)
    if batch or (is_csv and is_first):
        yield encode(batch, first=is_first)
        row_count += len(batch)
    signed = signed_manifest(manifest_build(export=export, row_count=row_count, sha256=digest.hexdigest(), head=head))
    if on_done is not None:
        on_done(signed)
    if not is_csv:
        yield (json.dumps(signed, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
