#!/usr/bin/env python3
"""Verify an audit export without the control plane: Python 3.9+ and `pip install rfc8785`.

    python verify_export.py audit.jsonl                      # the manifest is the last line
    python verify_export.py audit.csv --manifest audit.csv.manifest.json
    AUDIT_SIGNING_KEY=... python verify_export.py audit.jsonl  # also checks keyed rows and the signature

Checks: the file's sha256 and row count against the manifest; every row's hash recomputed
from the row (rows of chain format 3 with the signing key only); every link between
consecutive rows; that the chain format never goes back; the chain head named by the
manifest; with the signing key, the manifest's HMAC-SHA256 signature. Exit status: 0 intact,
1 something does not match, 2 not everything could be checked.

Row hash: for chain_format 3, HMAC-SHA256 with the signing key of previous_hash + "\n" +
canonical; for chain_format 2, sha256 of the same bytes. canonical is RFC 8785 of the row
without previous_hash and hash (an integer beyond 2**53 - 1 taken as the string of its
digits). chain_format 1 (rows sealed before format 2) hashed orjson's encoding of
[sequence, created_at, ...FORMAT_1_FIELDS values] with sha256; it needs `pip install orjson`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import io
import json
import os
import sys
from typing import Any

import rfc8785

GENESIS_HASH = "0" * 64
FORMAT_1_FIELDS = (
    "created_at", "actor_type", "actor_user_id", "actor_api_key_id", "actor_label", "action", "target_type",
    "target_id", "team_id", "application_id", "before", "after", "metadata", "request_id", "ip_address",
)  # fmt: skip
INTEGER_COLUMNS = ("sequence", "chain_format", "actor_user_id", "actor_api_key_id", "team_id", "application_id")
JSON_COLUMNS = ("before", "after", "metadata")
SAFE_INTEGER = 2**53 - 1


def exact_integers(value: Any) -> Any:
    if type(value) is int and not -SAFE_INTEGER <= value <= SAFE_INTEGER:
        return str(value)
    if isinstance(value, dict):
        return {key: exact_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exact_integers(item) for item in value]
    return value


def canonical(row: dict[str, Any]) -> bytes | None:
    """The bytes hashed for a row, or None when its format cannot be checked here."""
    content = {key: value for key, value in row.items() if key not in ("previous_hash", "hash")}
    if row["chain_format"] in (2, 3):
        return bytes(rfc8785.dumps(exact_integers(content)))
    if row["chain_format"] == 1:
        try:
            # Imported here: only format-1 rows need orjson, and the verifier runs where it may be missing.
            import orjson
        except ImportError:
            return None
        values = [row["sequence"], *(row[name] for name in FORMAT_1_FIELDS)]
        try:
            return bytes(orjson.dumps(values, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # integers beyond 64 bits
            return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return None


def row_hash(row: dict[str, Any], content: bytes, key: bytes | None) -> str | None:
    """The hash `row` should have, or None when it needs the key and none was given."""
    message = row["previous_hash"].encode() + b"\n" + content
    if row["chain_format"] == 3:
        return hmac.new(key, message, hashlib.sha256).hexdigest() if key is not None else None
    return hashlib.sha256(message).hexdigest()


def read_csv_rows(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for record in csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")):
        row: dict[str, Any] = dict(record)
        for name in INTEGER_COLUMNS:
            row[name] = int(row[name]) if row[name] != "" else None
        for name in JSON_COLUMNS:
            row[name] = json.loads(row[name]) if row[name] != "" else None
        rows.append(row)
    return rows


def verify(path: str, manifest_path: str | None = None, key: bytes | None = None) -> tuple[int, list[str]]:
    """(exit status, report lines) for the export at `path`."""
    problems: list[str] = []
    notes: list[str] = []
    with open(path, "rb") as handle:
        data = handle.read()
    if manifest_path is None:  # JSONL: the last line is {"manifest": ..., "signature": ...}
        body, _, trailer = data.rstrip(b"\n").rpartition(b"\n")
        body = body + b"\n" if body else b""
        signed = json.loads(trailer)
    else:
        body = data
        with open(manifest_path, "rb") as handle:
            signed = json.load(handle)
    manifest, signature = signed["manifest"], signed["signature"]
    key_id = hashlib.sha256(b"key-id:" + key).hexdigest()[:16] if key is not None else None
    row_key = key if key_id == manifest["key_id"] else None  # keyed rows: only with the exporter's key
    if manifest["format"] == "csv":
        rows = read_csv_rows(body)
    else:
        rows = [json.loads(line) for line in body.splitlines() if line.strip()]

    if hashlib.sha256(body).hexdigest() != manifest["sha256"]:
        problems.append("the file's sha256 differs from the manifest's: the file was changed after export.")
    if len(rows) != manifest["row_count"]:
        problems.append(f"the file has {len(rows)} rows; the manifest says {manifest['row_count']}.")
    unchecked: dict[int, int] = {}  # chain format -> rows not re-hashed
    highest_format = 0
    previous: dict[str, Any] | None = None
    for row in rows:
        sequence = row["sequence"]
        content = canonical(row)
        expected_hash = row_hash(row, content, row_key) if content is not None else None
        if expected_hash is None:
            unchecked[row["chain_format"]] = unchecked.get(row["chain_format"], 0) + 1
        elif expected_hash != row["hash"]:
            problems.append(f"event #{sequence} does not match its hash: its content was changed.")
        if row["chain_format"] < highest_format:
            problems.append(f"event #{sequence} uses chain format {row['chain_format']} after format {highest_format}.")
        highest_format = max(highest_format, row["chain_format"])
        if previous is not None and sequence <= previous["sequence"]:
            problems.append(f"event #{sequence} comes after #{previous['sequence']}: rows are out of order.")
        if sequence == 1:
            expected: str | None = GENESIS_HASH
        elif previous is not None and sequence == previous["sequence"] + 1:
            expected = previous["hash"]
        else:
            expected = None  # the event before it is not in this (filtered) export
        if expected is not None and row["previous_hash"] != expected:
            problems.append(f"event #{sequence} does not link to the event before it.")
        previous = row
    head = manifest["chain_head"]
    at_head = [row for row in rows if row["sequence"] == head["sequence"]]
    if at_head and at_head[0]["hash"] != head["hash"]:
        problems.append(f"event #{head['sequence']} does not have the chain head hash the manifest names.")
    if any(row["sequence"] > head["sequence"] for row in rows):
        problems.append(f"the file has events after the manifest's chain head #{head['sequence']}.")
    if rows and (rows[0]["sequence"] != 1 or rows[-1]["sequence"] - rows[0]["sequence"] + 1 != len(rows)):
        notes.append("a filtered export: links are checked between consecutive events only.")
    for chain_format, count in sorted(unchecked.items()):
        if chain_format == 1:
            notes.append(f"{count} rows of chain format 1 not re-hashed: install orjson to check them.")
        elif chain_format == 3:
            notes.append(f"{count} rows of chain format 3 not re-hashed: they need the signing key.")
        else:
            problems.append(f"{count} rows name chain format {chain_format}, which does not exist.")
    is_complete = not unchecked
    if key is None:
        notes.append("signature not checked: set AUDIT_SIGNING_KEY to check it.")
    elif key_id != manifest["key_id"]:
        notes.append(f"signature not checked: it was made with key {manifest['key_id']}, not the one given.")
        is_complete = False
    elif not hmac.compare_digest(hmac.new(key, rfc8785.dumps(manifest), hashlib.sha256).hexdigest(), signature):
        problems.append("the manifest's signature is not valid: the manifest was changed or forged.")
    status = 1 if problems else 0 if is_complete else 2
    verdict = ["INTACT", "BROKEN", "INCOMPLETE"][status]
    lines = [f"{verdict}: {len(rows)} events, chain head #{head['sequence']} {head['hash']}", *problems, *notes]
    return status, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an audit export of the control plane.")
    parser.add_argument("export", help="the exported .jsonl or .csv file")
    parser.add_argument("--manifest", help="the manifest JSON ({manifest, signature}); JSONL carries its own")
    arguments = parser.parse_args(argv)
    key = os.environ.get("AUDIT_SIGNING_KEY")
    status, lines = verify(arguments.export, arguments.manifest, key.encode() if key else None)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
