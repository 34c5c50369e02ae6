"""Audit trail benchmark: export N sealed events as JSONL (rows/s, peak memory) next to
PostgreSQL's own COPY ... TO STDOUT of the same rows, and verify the chain (events/s).

Run: .venv/bin/python bench/audit_bench.py [--events 1000000]

With DATABASE_URL=postgres://... it creates a throwaway database on that server (dropped at
the end); otherwise a throwaway SQLite file (no COPY comparison). Events are generated with
the same chain code that seals them (compliance.chain.chain_rows) and written with COPY
(PostgreSQL) or bulk_create in chunks (SQLite). Each measurement runs in a fresh process,
so its peak resident memory (ru_maxrss) is the measured work plus Django's baseline.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._meta import print_header  # noqa: E402 - needs ROOT on sys.path


def configure(database_url: str | None, var_dir: str) -> None:
    os.environ["CONTROLPLANE_VAR_DIR"] = var_dir
    os.environ["DJANGO_DEBUG"] = "true"
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.pop("CACHE_URL", None)
    os.environ["CELERY_BROKER_URL"] = "memory://"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Child phases ----------------------------------------------------------------------


def phase_generate(events: int) -> dict[str, Any]:
    import datetime
    import io

    from django.db import connection

    from compliance import chain
    from compliance.models import AuditEvent

    actions = ["llm.call"] * 8 + ["api_key.create", "auth.login"]
    team_ids = [1, 2, 3]
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    started = time.perf_counter()

    def values(index: int) -> list[Any]:
        action = actions[index % len(actions)]
        is_call = action == "llm.call"
        return [
            start + datetime.timedelta(microseconds=index * 1000),
            "api_key" if is_call else "user",
            None if is_call else 1 + index % 50,
            1 + index % 7 if is_call else None,
            f"api key id {1 + index % 7}" if is_call else f"user user{index % 50}",
            action,
            "observability.call" if is_call else "accounts.apikey",
            f"0190a1b2-c3d4-7e5f-8a9b-{index:012d}",
            team_ids[index % 3],
            10 + index % 3,
            None,
            None if is_call else {"name": f"key {index}", "role": "application"},
            {"content_sha256": f"{index:064x}", "status": "success", "model": "gpt-4o-mini", "source": "gateway"}
            if is_call
            else {},
            f"req-{index:012d}",
            "10.0.0.1",
        ]

    chunk = 20000
    sequence, previous = 0, chain.GENESIS_HASH
    sealed_at = datetime.datetime.now(datetime.UTC)
    columns = ["sequence", "chain_format", *chain.CONTENT_FIELDS, "previous_hash", "hash", "sealed_at"]
    json_indexes = {columns.index(name) for name in ("before", "after", "metadata")}
    for offset in range(0, events, chunk):
        batch = [values(index) for index in range(offset, min(events, offset + chunk))]
        links = list(chain.chain_rows(batch, start_sequence=sequence, start_hash=previous))
        sequence, previous = links[-1][0], links[-1][2]
        rows = [
            [link[0], chain.CURRENT_CHAIN_FORMAT, *row, link[1], link[2], sealed_at]
            for row, link in zip(batch, links, strict=True)
        ]
        if connection.vendor == "postgresql":
            buffer = io.StringIO()
            for row in rows:
                buffer.write(
                    "\t".join(
                        "\\N"
                        if value is None
                        else (
                            json.dumps(value, ensure_ascii=False)
                            if index in json_indexes
                            else (value.isoformat() if isinstance(value, datetime.datetime) else str(value))
                        )
                        .replace("\\", "\\\\")
                        .replace("\t", "\\t")
                        .replace("\n", "\\n")
                        for index, value in enumerate(row)
                    )
                    + "\n"
                )
            with connection.cursor() as cursor:
                # Rows already sealed: the INSERT trigger refuses them (compliance migration 0004)
                # unless triggers are off, which only a superuser (this generator) can do.
                cursor.execute("SET session_replication_role = replica")
                try:
                    with cursor.cursor.copy(f"COPY compliance_auditevent ({', '.join(columns)}) FROM STDIN") as copy:
                        copy.write(buffer.getvalue())
                finally:
                    cursor.execute("SET session_replication_role = DEFAULT")
        else:
            AuditEvent.objects.bulk_create(
                [AuditEvent(**dict(zip(columns, row, strict=True))) for row in rows], batch_size=2000
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE compliance_auditevent")
    chain.checkpoint_create()
    return {"seconds": time.perf_counter() - started}


class _Sink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)


def phase_export() -> dict[str, Any]:
    """The real endpoint, in process: GET /api/v1/audit/export/?format=jsonl as a compliance officer
    of every team (Django test client, full middleware and view stack), streamed to a byte counter."""
    from django.contrib.auth.models import User
    from django.test import Client

    from accounts.models import Membership, Role, Team

    user = User.objects.create(username="bench-officer")
    for team_id in (1, 2, 3):
        team, _ = Team.objects.get_or_create(id=team_id, defaults={"name": f"Bench team {team_id}"})
        Membership.objects.create(user=user, team=team, role=Role.COMPLIANCE_OFFICER)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    sink = _Sink()
    started = time.perf_counter()
    response = client.get("/api/v1/audit/export/", {"format": "jsonl"})
    last = b""
    for chunk in response.streaming_content:  # type: ignore[attr-defined]  # a streaming response
        sink.write(chunk)
        last = chunk
    seconds = time.perf_counter() - started
    manifest = json.loads(last.splitlines()[-1])["manifest"]
    return {"seconds": seconds, "rows": manifest["row_count"], "bytes": sink.bytes, "peak_mb": peak_mb()}


def phase_copy(as_json: bool) -> dict[str, Any]:
    from django.db import connection

    from compliance.export import EXPORT_COLUMNS

    select = (
        f"SELECT {', '.join(EXPORT_COLUMNS)} FROM compliance_auditevent "  # noqa: S608 - constant column names
        "WHERE sequence IS NOT NULL ORDER BY sequence"
    )
    query = f"COPY (SELECT row_to_json(e) FROM ({select}) e) TO STDOUT" if as_json else f"COPY ({select}) TO STDOUT"  # noqa: S608 - constant SQL
    sink = _Sink()
    started = time.perf_counter()
    with connection.cursor() as cursor, cursor.cursor.copy(query) as copy:
        for block in copy:
            sink.write(bytes(block))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": sink.bytes, "peak_mb": peak_mb()}


def phase_verify() -> dict[str, Any]:
    from compliance import chain

    started = time.perf_counter()
    report = chain.verify_chain()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "events": report.events_verified,
        "is_intact": report.is_intact,
        "summary": report.summary,
        "peak_mb": peak_mb(),
    }


def child(arguments: argparse.Namespace) -> None:
    configure(arguments.database_url or None, arguments.var_dir)
    if arguments.phase == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        result: dict[str, Any] = {}
    elif arguments.phase == "generate":
        result = phase_generate(arguments.events)
    elif arguments.phase == "export":
        result = phase_export()
    elif arguments.phase in ("copy", "copy-json"):
        result = phase_copy(as_json=arguments.phase == "copy-json")
    else:
        result = phase_verify()
    print(json.dumps(result))


# Parent ----------------------------------------------------------------------------


def run_phase(phase: str, database_url: str, var_dir: str, events: int) -> dict[str, Any]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            phase,
            "--database-url",
            database_url,
            "--var-dir",
            var_dir,
            "--events",
            str(events),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--child", dest="phase", default="")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--var-dir", default="")
    arguments = parser.parse_args()
    if arguments.phase:
        child(arguments)
        return
    print_header()

    var_dir = tempfile.mkdtemp(prefix="audit-bench-")
    atexit.register(shutil.rmtree, var_dir, ignore_errors=True)
    server_url = os.environ.get("DATABASE_URL", "")
    database_url = ""
    if server_url.startswith("postgres"):
        import psycopg

        parsed = urlparse(server_url)
        name = f"audit_bench_{os.getpid()}"
        admin_url = urlunparse(parsed._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")

        def drop() -> None:
            with psycopg.connect(admin_url, autocommit=True) as connection:
                connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        atexit.register(drop)
        database_url = urlunparse(parsed._replace(path=f"/{name}"))
    engine = "PostgreSQL" if database_url else "SQLite"
    print(f"Audit benchmark: {arguments.events:,} events on {engine}")
    run_phase("migrate", database_url, var_dir, arguments.events)
    generated = run_phase("generate", database_url, var_dir, arguments.events)
    print(f"  generate + seal (chain code, {'COPY' if database_url else 'bulk_create'}): {generated['seconds']:.1f} s")

    exported = run_phase("export", database_url, var_dir, arguments.events)
    rows_per_second = exported["rows"] / exported["seconds"]
    print(
        f"  export JSONL via GET /api/v1/audit/export/: {exported['rows']:,} rows, {exported['bytes'] / 1e6:.0f} MB "
        f"in {exported['seconds']:.1f} s = {rows_per_second:,.0f} rows/s, peak RSS {exported['peak_mb']:.0f} MB"
    )
    if database_url:
        for phase, label in (("copy", "COPY ... TO STDOUT (text)"), ("copy-json", "COPY (row_to_json) TO STDOUT")):
            copied = run_phase(phase, database_url, var_dir, arguments.events)
            print(
                f"  PostgreSQL {label}: {copied['bytes'] / 1e6:.0f} MB in {copied['seconds']:.1f} s = "
                f"{exported['rows'] / copied['seconds']:,.0f} rows/s, peak RSS {copied['peak_mb']:.0f} MB"
            )
    verified = run_phase("verify", database_url, var_dir, arguments.events)
    print(
        f"  verify: {verified['events']:,} events in {verified['seconds']:.1f} s = "
        f"{verified['events'] / verified['seconds']:,.0f} events/s, peak RSS {verified['peak_mb']:.0f} MB "
        f"({'intact' if verified['is_intact'] else 'BROKEN: ' + verified['summary']})"
    )


if __name__ == "__main__":
    main()
