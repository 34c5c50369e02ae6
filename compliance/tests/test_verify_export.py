"""An auditor's check of an export, with the standalone script that docs/audit-verification.md shows."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785
from django.conf import settings

from accounts.caller import caller_for_user
from accounts.types import Role
from compliance import chain
from compliance.audit import audit_record
from compliance.tests.test_canonical import seal_as_format_1

pytestmark = pytest.mark.django_db

SCRIPT = Path(chain.__file__).with_name("verify_export.py")
DOC = Path(settings.BASE_DIR) / "docs" / "audit-verification.md"
EXPORT = "/api/v1/audit/export/"


def run(*arguments: str, key: str | None = None, without_orjson: bool = False) -> subprocess.CompletedProcess[str]:
    """The script as an auditor runs it: isolated (-I: no project on the path, no PYTHON* variables)."""
    environment = {"PATH": "/usr/bin:/bin"} | ({"AUDIT_SIGNING_KEY": key} if key else {})
    if without_orjson:
        command = [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.modules['orjson'] = None; sys.argv = sys.argv[1:]; "
            "exec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'))",
            str(SCRIPT),
            *arguments,
        ]
    else:
        command = [sys.executable, "-I", str(SCRIPT), *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60, check=False)  # noqa: S603 - our own script


def record_events(team) -> None:
    actor = caller_for_user(team.members[Role.ADMIN])
    audit_record(
        actor=actor, action="model.update", team_id=team.team.id, before={"threshold": 0.5}, after={"threshold": 1e-05}
    )
    audit_record(
        actor=actor,
        action="thing.change",
        team_id=team.team.id,
        after={"ratio": 1.0, "big": 9223372036854775808, "name": "é ✓ 😀", "ключ": [1e21, -0.0, None]},
        metadata={"\ue000": "private use", "😀": "astral"},
    )
    audit_record(actor=None, action="system.thing", team_id=team.team.id)
    chain.seal_pending()


def export_to(client, tmp_path: Path, export_format: str = "jsonl") -> tuple[Path, dict]:
    response = client.get(EXPORT, {"format": export_format})
    assert response.status_code == 200
    path = tmp_path / f"audit.{export_format}"
    path.write_bytes(b"".join(response.streaming_content))
    detail = client.get(f"/api/v1/audit/exports/{response['X-Audit-Export-Id']}/").json()
    return path, detail["manifest"]


@pytest.fixture
def jsonl_export(team_a, client_for, tmp_path) -> Path:
    """Three events of team A, exported as JSON lines by its compliance officer."""
    record_events(team_a)
    path, _ = export_to(client_for(team_a.members[Role.COMPLIANCE_OFFICER]), tmp_path)
    return path


def row_of(path: Path, index: int) -> dict:
    return json.loads(path.read_bytes().splitlines()[index])


def with_row(path: Path, index: int, row: dict, **dumps_options) -> Path:
    """A copy of the export beside it whose line `index` is `row`, as an editor would write it."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = (json.dumps(row, ensure_ascii=False, **dumps_options) + "\n").encode()
    tampered = path.with_name("tampered.jsonl")
    tampered.write_bytes(b"".join(lines))
    return tampered


def test_the_doc_shows_the_script_byte_for_byte():
    doc = DOC.read_text()
    shown = doc.split("## The script\n", 1)[1].split("```python\n", 1)[1].rsplit("```", 1)[0]

    assert shown == SCRIPT.read_text()


def test_the_script_imports_nothing_but_the_standard_library_and_rfc8785():
    imported = set()
    for node in ast.walk(ast.parse(SCRIPT.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])

    assert imported - set(sys.stdlib_module_names) == {"rfc8785", "orjson"}  # orjson: optional, format-1 rows only


def test_an_intact_jsonl_export_verifies_with_its_signature(jsonl_export):
    head = chain.chain_head()

    result = run(str(jsonl_export), key=settings.AUDIT_SIGNING_KEY)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"INTACT: 3 events, chain head #{head.sequence} {head.hash}\n"


def test_a_jsonl_export_without_the_key_checks_the_links_but_not_the_keyed_hashes(jsonl_export):
    result = run(str(jsonl_export))

    assert result.returncode == 2
    assert result.stdout.splitlines()[1:] == [
        "3 rows of chain format 3 not re-hashed: they need the signing key.",
        "signature not checked: set AUDIT_SIGNING_KEY to check it.",
    ]


def test_a_row_edited_with_its_hash_recomputed_without_the_key_is_caught(jsonl_export):
    row = row_of(jsonl_export, -2)
    row["action"] = "edited.thing"
    content = {key: value for key, value in row.items() if key not in ("previous_hash", "hash")}
    row["hash"] = hashlib.sha256(row["previous_hash"].encode() + b"\n" + rfc8785.dumps(content)).hexdigest()
    tampered = with_row(jsonl_export, -2, row)

    result = run(str(tampered), key=settings.AUDIT_SIGNING_KEY)

    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [
        "the file's sha256 differs from the manifest's: the file was changed after export.",
        "event #3 does not match its hash: its content was changed.",
        "event #3 does not have the chain head hash the manifest names.",
    ]


def test_a_csv_export_verifies_with_its_manifest_file(team_a, client_for, tmp_path):
    record_events(team_a)
    path, manifest = export_to(client_for(team_a.members[Role.COMPLIANCE_OFFICER]), tmp_path, "csv")
    manifest_path = tmp_path / "audit.csv.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2))

    result = run(str(path), "--manifest", str(manifest_path), key=settings.AUDIT_SIGNING_KEY)

    assert (result.returncode, result.stdout.split(":")[0]) == (0, "INTACT"), result.stdout


def test_a_tampered_float_is_caught(jsonl_export):
    row = row_of(jsonl_export, 0)
    assert row["after"] == {"threshold": 1e-05}
    row["after"]["threshold"] = 2e-05
    tampered = with_row(jsonl_export, 0, row, separators=(",", ":"))

    result = run(str(tampered), key=settings.AUDIT_SIGNING_KEY)

    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [
        "the file's sha256 differs from the manifest's: the file was changed after export.",
        "event #1 does not match its hash: its content was changed.",
    ]


def test_a_removed_row_and_a_forged_manifest_are_caught(jsonl_export, tmp_path):
    lines = jsonl_export.read_bytes().splitlines(keepends=True)
    trailer = json.loads(lines[-1])
    # Drop event #2 and fix up the manifest's sha256 and row count, as a forger without the key would.
    body = lines[0] + lines[2]
    trailer["manifest"] |= {"sha256": hashlib.sha256(body).hexdigest(), "row_count": 2}
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(body + json.dumps(trailer).encode() + b"\n")

    result = run(str(forged), key=settings.AUDIT_SIGNING_KEY)

    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [
        "the manifest's signature is not valid: the manifest was changed or forged.",
        "a filtered export: links are checked between consecutive events only.",
    ]


def test_rows_of_format_1_verify_with_orjson_and_are_reported_unchecked_without_it(team_a, client_for, tmp_path):
    seal_as_format_1(2, team_a)  # an export of a database that predates format 2
    record_events(team_a)
    path, _ = export_to(client_for(team_a.members[Role.COMPLIANCE_OFFICER]), tmp_path)

    with_orjson = run(str(path), key=settings.AUDIT_SIGNING_KEY)
    without_orjson = run(str(path), key=settings.AUDIT_SIGNING_KEY, without_orjson=True)

    assert (with_orjson.returncode, with_orjson.stdout.split(":")[0]) == (0, "INTACT"), with_orjson.stdout
    assert without_orjson.returncode == 2, without_orjson.stderr
    assert without_orjson.stdout.splitlines()[1:] == [
        "2 rows of chain format 1 not re-hashed: install orjson to check them."
    ]
