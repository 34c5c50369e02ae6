"""The hash chain: canonical content, sealing in order, signed checkpoints and heads, verification.

hash(n) = digest(hash(n-1) + "\\n" + canonical(n)), with hash(0) = GENESIS_HASH. What
canonical(n) and digest are depends on the event's chain format (`chain_format`, stored on
the event and exported with it), fixed when the event is sealed:

- Format 3 (current): keyed. digest is HMAC-SHA256 with AUDIT_SIGNING_KEY, which lives in
  the environment, never in the database: someone who can write the database but does not
  hold the key cannot compute the hash of a forged, edited or appended event. canonical(n)
  is as in format 2, with "chain_format": 3.
- Format 2: digest is sha256; canonical(n) is RFC 8785 (JSON Canonicalization Scheme) of the
  JSON object {"sequence": n, "chain_format": 2, <every field of CONTENT_FIELDS>: value},
  which is the exported row without its `previous_hash` and `hash`. One addition to RFC 8785:
  an integer outside I-JSON's exact range (|n| > 2**53 - 1), which RFC 8785 cannot encode
  exactly, is canonicalised as the string of its decimal digits.
- Format 1 (events sealed before format 2 existed): sha256 of orjson's compact encoding,
  keys sorted, of the array [n, created_at, <the other CONTENT_FIELDS values in order>].
  orjson and json.dumps(sort_keys=True) differ on some floats (1e-05), which is why format 2
  exists.

Events are never re-hashed (the trail is append-only): events of an older format keep
verifying with it, and the next format starts with the first event sealed after an upgrade.
A format never goes back along the chain (the verifier reports a downgrade), and formats 2
and 3 hash their own number, so an event cannot be relabelled to an older format without
breaking its hash. docs/audit-verification.md shows how a third party verifies an export
with compliance/verify_export.py.

What the chain alone cannot show, a deleted tail or an emptied table, the signed heads show:
after every seal and checkpoint the head (count and hash, signed) is appended to
AUDIT_HEAD_FILE, outside the database, and verification compares the database with the
newest head there. The sealer refuses to seal an event dated more than
AUDIT_SEAL_MAX_BACKDATE_SECONDS before the events already sealed (an insert backdated into
the past): it stays out of the chain, marked with `seal_refusal`, and verification reports it.

Sealing takes a lock (a transaction-scoped advisory lock on PostgreSQL; SQLite serialises
writers) so that two sealers running at once cannot fork the chain; each assigns the next
numbers of a gapless sequence to pending events in id order.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import rfc8785
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from compliance.models import AuditCheckpoint, AuditEvent

logger = logging.getLogger(__name__)
GENESIS_HASH = "0" * 64
# The fields covered by an event's hash, in canonical order (after the sequence number).
CONTENT_FIELDS: tuple[str, ...] = (
    "created_at",
    "actor_type",
    "actor_user_id",
    "actor_api_key_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "team_id",
    "application_id",
    "before",
    "after",
    "metadata",
    "request_id",
    "ip_address",
)
_ADVISORY_LOCK_KEY = 0x41554449  # "AUDI": one key for the whole chain
SEAL_BATCH_SIZE = 2000
VERIFY_CHUNK_SIZE = 10000


def format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


# RFC 8785 encodes numbers as IEEE-754 doubles: integers beyond this are not exact.
_SAFE_INTEGER = 2**53 - 1


def _exact_integers(value: Any) -> Any:
    """`value` with every integer beyond I-JSON's exact range as the string of its digits."""
    if type(value) is int and not -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
        return str(value)
    if isinstance(value, dict):
        return {key: _exact_integers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_exact_integers(item) for item in value]
    return value


def _orjson_is_canonical(value: Any) -> bool:
    """Whether orjson (keys sorted, 53-bit integers) writes `value` byte for byte as RFC 8785 does.

    They write strings, booleans, null and integers identically (checked for every code point
    by compliance/tests/test_canonical.py; orjson refuses integers beyond 2**53 - 1 with
    OPT_STRICT_INTEGER) and sort ASCII keys alike; they differ on floats (1e-05, 1.0, -0.0) and
    may sort non-ASCII keys differently (RFC 8785 sorts by UTF-16 code units). orjson is about
    80 times faster than the rfc8785 package, which keeps verification fast. Written as loops
    with the checks inline: this runs for every event sealed or verified.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            item_kind = type(item)
            if item_kind is str or item is None or item_kind is int or item_kind is bool:
                continue
            if (item_kind is dict or item_kind is list) and _orjson_is_canonical(item):
                continue
            return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            item_kind = type(item)
            if item_kind is str or item is None or item_kind is int or item_kind is bool:
                continue
            if (item_kind is dict or item_kind is list) and _orjson_is_canonical(item):
                continue
            return False
        return True
    return kind is str or value is None or kind is int or kind is bool


def canonical_json(payload: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme), integers beyond 2**53 - 1 as strings of digits.

    Never raises for a JSON value (what a JSON column gives back): sealing must not stop."""
    if _orjson_is_canonical(payload):
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
        except orjson.JSONEncodeError:
            pass  # an integer beyond the exact range
    return rfc8785.dumps(_exact_integers(payload))


def _canonical_json_format_1(payload: Any) -> bytes:
    """Format 1: orjson with sorted keys, the standard library for integers beyond 64 bits."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # integers beyond 64 bits


def _formatted(values: Sequence[Any]) -> list[Any]:
    created_at = values[0]
    return [created_at if isinstance(created_at, str) else format_time(created_at), *values[1:]]


def _canonical_format_1(sequence: int, values: Sequence[Any]) -> bytes:
    return _canonical_json_format_1([sequence, *_formatted(values)])


_BEFORE, _AFTER, _METADATA = (CONTENT_FIELDS.index(name) for name in ("before", "after", "metadata"))


def _canonical_object(sequence: int, values: Sequence[Any], chain_format: int) -> bytes:
    # A hot path (every event sealed or verified), hence no zip(strict=True) and no generators:
    # `values` always come from values_list(*CONTENT_FIELDS).
    payload = dict(zip(CONTENT_FIELDS, values))  # noqa: B905 - see above
    created_at = values[0]
    if not isinstance(created_at, str):
        payload["created_at"] = format_time(created_at)
    payload["sequence"] = sequence
    payload["chain_format"] = chain_format
    # The other fields are strings, integers or null by the table's schema: only the JSON
    # columns need the check.
    if (
        _orjson_is_canonical(values[_BEFORE])
        and _orjson_is_canonical(values[_AFTER])
        and _orjson_is_canonical(values[_METADATA])
    ):
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
        except orjson.JSONEncodeError:
            pass  # an integer beyond the exact range
    return canonical_json(payload)


def _canonical_format_2(sequence: int, values: Sequence[Any]) -> bytes:
    return _canonical_object(sequence, values, 2)


def _canonical_format_3(sequence: int, values: Sequence[Any]) -> bytes:
    return _canonical_object(sequence, values, 3)


def _sha256_link(previous_hash: str, content: bytes) -> str:
    digest = hashlib.sha256(previous_hash.encode())
    digest.update(b"\n")
    digest.update(content)
    return digest.hexdigest()


def _hmac_link(previous_hash: str, content: bytes) -> str:
    # The same key as checkpoints and manifests: their messages are JSON objects (they begin
    # with "{"), a link begins with 64 hex digits, so no message of one kind is one of another.
    digest = hmac.new(signing_key(), previous_hash.encode(), hashlib.sha256)
    digest.update(b"\n")
    digest.update(content)
    return digest.hexdigest()


CHAIN_FORMAT_ORJSON = 1
CHAIN_FORMAT_RFC8785 = 2
CHAIN_FORMAT_KEYED = 3
CURRENT_CHAIN_FORMAT = CHAIN_FORMAT_KEYED
# Per format: how an event's content is canonicalised, and how a link is hashed.
_CANONICAL = {
    CHAIN_FORMAT_ORJSON: _canonical_format_1,
    CHAIN_FORMAT_RFC8785: _canonical_format_2,
    CHAIN_FORMAT_KEYED: _canonical_format_3,
}
_DIGEST = {CHAIN_FORMAT_ORJSON: _sha256_link, CHAIN_FORMAT_RFC8785: _sha256_link, CHAIN_FORMAT_KEYED: _hmac_link}
CHAIN_FORMATS = frozenset(_CANONICAL)


def canonical_content(sequence: int, values: Sequence[Any], *, chain_format: int = CURRENT_CHAIN_FORMAT) -> bytes:
    """The bytes hashed for an event: `values` follow CONTENT_FIELDS (created_at as a datetime,
    or already formatted by format_time)."""
    return _CANONICAL[chain_format](sequence, values)


def link_hash(
    previous_hash: str, sequence: int, values: Sequence[Any], *, chain_format: int = CURRENT_CHAIN_FORMAT
) -> str:
    return _DIGEST[chain_format](previous_hash, canonical_content(sequence, values, chain_format=chain_format))


def chain_rows(
    rows: Iterable[Sequence[Any]],
    *,
    start_sequence: int,
    start_hash: str,
    chain_format: int = CURRENT_CHAIN_FORMAT,
) -> Iterator[tuple[int, str, str]]:
    """For rows of CONTENT_FIELDS values in chain order: (sequence, previous hash, hash) each.

    Pure, so that the sealer, the verifier and bulk generators (bench) share it.
    """
    sequence, previous = start_sequence, start_hash
    for values in rows:
        sequence += 1
        current = link_hash(previous, sequence, values, chain_format=chain_format)
        yield sequence, previous, current
        previous = current


# Head and sealing -----------------------------------------------------------------


@dataclass(frozen=True)
class ChainHead:
    sequence: int
    hash: str


def chain_head() -> ChainHead:
    last = AuditEvent.objects.filter(sequence__isnull=False).order_by("-sequence").values_list("sequence", "hash")
    row = last.first()
    if row is None or row[0] is None:
        return ChainHead(sequence=0, hash=GENESIS_HASH)
    return ChainHead(sequence=row[0], hash=row[1])


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
    # SQLite: transactions begin IMMEDIATE (settings), so writers are already serialised.


def _last_sealed_time() -> datetime.datetime | None:
    return (
        AuditEvent.objects.filter(sequence__isnull=False)
        .order_by("-sequence")
        .values_list("created_at", flat=True)
        .first()
    )


def _backdating_refusal(created_at: datetime.datetime, latest: datetime.datetime | None) -> str:
    """Why an event dated `created_at` may not follow events dated up to `latest`, or ""."""
    if latest is None:
        return ""
    tolerance = datetime.timedelta(seconds=settings.AUDIT_SEAL_MAX_BACKDATE_SECONDS)
    if created_at >= latest - tolerance:
        return ""
    return (
        f"dated {format_time(created_at)}, more than {settings.AUDIT_SEAL_MAX_BACKDATE_SECONDS} s before "
        f"{format_time(latest)}, the time of events already sealed: inserted backdated (tampering, or a "
        "clock set back), so not sealed into the chain"
    )


def seal_pending(*, batch_size: int = SEAL_BATCH_SIZE, max_batches: int = 50) -> int:
    """Seal pending events in id order; returns how many were sealed. Safe to run concurrently.

    An event dated well before the events already sealed is refused (see _backdating_refusal)
    and reported by verification. After sealing, the new head is appended to AUDIT_HEAD_FILE."""
    sealed = 0
    for _ in range(max_batches):
        with transaction.atomic():
            _lock_chain()
            head = chain_head()
            pending = list(
                AuditEvent.objects.filter(sequence__isnull=True, seal_refusal="")
                .order_by("id")
                .values_list("id", *CONTENT_FIELDS)[:batch_size]
            )
            if not pending:
                break
            latest = _last_sealed_time()
            accepted, refused = [], []
            for row in pending:
                refusal = _backdating_refusal(row[1], latest)
                if refusal:
                    refused.append(AuditEvent(id=row[0], seal_refusal=refusal))
                    continue
                accepted.append(row)
                latest = row[1] if latest is None else max(latest, row[1])
            now = timezone.now()
            updates = [
                AuditEvent(
                    id=row[0],
                    sequence=sequence,
                    chain_format=CURRENT_CHAIN_FORMAT,
                    previous_hash=previous,
                    hash=current,
                    sealed_at=now,
                )
                for row, (sequence, previous, current) in zip(
                    accepted,
                    chain_rows((row[1:] for row in accepted), start_sequence=head.sequence, start_hash=head.hash),
                    strict=True,
                )
            ]
            AuditEvent.objects.bulk_update(
                updates, ["sequence", "chain_format", "previous_hash", "hash", "sealed_at"], batch_size=500
            )
            if refused:
                AuditEvent.objects.bulk_update(refused, ["seal_refusal"], batch_size=500)
                for event in refused:
                    logger.error("audit event %s refused by the sealer: %s", event.id, event.seal_refusal)
            sealed += len(updates)
        if len(pending) < batch_size:
            break
    if sealed:
        head_write(chain_head())
    return sealed


# Checkpoints ----------------------------------------------------------------------


def signing_key() -> bytes:
    return str(settings.AUDIT_SIGNING_KEY).encode()


def signing_key_id() -> str:
    """Names the key (not secret): a verifier can tell a rotated key from a forged signature."""
    return hashlib.sha256(b"key-id:" + signing_key()).hexdigest()[:16]


def sign(payload: dict[str, Any]) -> str:
    """HMAC-SHA256 over the payload's canonical JSON (RFC 8785). Checkpoints and manifests hold
    only ASCII keys, strings and small integers, for which this is byte for byte what
    json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) gave before: the
    signatures made then still verify."""
    return hmac.new(signing_key(), canonical_json(payload), hashlib.sha256).hexdigest()


def signature_matches(payload: dict[str, Any], signature: str) -> bool:
    return hmac.compare_digest(sign(payload), signature)


def checkpoint_payload(*, sequence: int, head_hash: str, created_at: datetime.datetime, key_id: str) -> dict[str, Any]:
    return {
        "kind": "audit-checkpoint",
        "sequence": sequence,
        "head_hash": head_hash,
        "created_at": format_time(created_at),
        "key_id": key_id,
    }


def checkpoint_create() -> AuditCheckpoint | None:
    """Sign the current head, unless the latest checkpoint already covers it."""
    head = chain_head()
    if head.sequence == 0:
        return None
    latest = AuditCheckpoint.objects.order_by("-sequence").first()
    if latest is not None and latest.sequence >= head.sequence:
        return None
    now = timezone.now()
    key_id = signing_key_id()
    payload = checkpoint_payload(sequence=head.sequence, head_hash=head.hash, created_at=now, key_id=key_id)
    checkpoint = AuditCheckpoint.objects.create(
        sequence=head.sequence, head_hash=head.hash, created_at=now, key_id=key_id, signature=sign(payload)
    )
    head_write(head)
    return checkpoint


# Signed heads outside the database ---------------------------------------------------

# Verification reads the end of the head file only: the newest heads are there, and the file
# grows by one line per seal.
HEAD_FILE_TAIL_BYTES = 64 * 1024


def head_payload(*, sequence: int, head_hash: str, created_at: str, key_id: str) -> dict[str, Any]:
    return {
        "kind": "audit-head",
        "sequence": sequence,
        "head_hash": head_hash,
        "created_at": created_at,
        "key_id": key_id,
    }


@dataclass(frozen=True)
class SignedHead:
    """One line of AUDIT_HEAD_FILE: "the chain had `sequence` events ending in `head_hash`"."""

    sequence: int
    head_hash: str
    created_at: str
    key_id: str
    problem: str = ""  # why the line cannot be trusted; "" when its signature is valid

    @property
    def is_signature_valid(self) -> bool:
        return not self.problem


def head_file_path() -> str:
    return str(settings.AUDIT_HEAD_FILE or "")


def head_write(head: ChainHead) -> None:
    """Append the signed head to AUDIT_HEAD_FILE (and the log). Never raises: sealing must not
    stop because the file cannot be written; verification then finds the head missing or old."""
    if head.sequence == 0:
        return
    payload = head_payload(
        sequence=head.sequence, head_hash=head.hash, created_at=format_time(timezone.now()), key_id=signing_key_id()
    )
    signed = {"head": payload, "signature": sign(payload)}
    logger.info("audit chain head", extra={"audit_head": signed})
    path = head_file_path()
    if not path:
        return
    line = (json.dumps(signed, separators=(",", ":")) + "\n").encode()
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # One write() of one short line with O_APPEND: concurrent sealers never interleave lines.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
    except OSError:
        logger.exception("could not append the audit chain head to AUDIT_HEAD_FILE %s", path)


def _parse_head(raw: bytes) -> SignedHead:
    try:
        signed = json.loads(raw)
        payload, signature = signed["head"], signed["signature"]
        head = SignedHead(
            sequence=int(payload["sequence"]),
            head_hash=str(payload["head_hash"]),
            created_at=str(payload["created_at"]),
            key_id=str(payload["key_id"]),
        )
    except (ValueError, TypeError, KeyError):
        return SignedHead(sequence=0, head_hash="", created_at="", key_id="", problem="is not a signed head")
    if head.key_id != signing_key_id():
        problem = f"was signed with key {head.key_id}, not the configured AUDIT_SIGNING_KEY ({signing_key_id()})"
    elif not isinstance(signature, str) or not signature_matches(payload, signature):
        problem = "has an invalid signature (forged or altered)"
    else:
        return head
    return SignedHead(head.sequence, head.head_hash, head.created_at, head.key_id, problem=problem)


def heads_read() -> list[SignedHead]:
    """The heads at the end of AUDIT_HEAD_FILE, oldest first; [] when there is no file."""
    path = head_file_path()
    if not path:
        return []
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - HEAD_FILE_TAIL_BYTES)
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # cut in the middle
    return [_parse_head(line) for line in lines if line.strip()]


def head_last_written() -> SignedHead | None:
    """The last line of AUDIT_HEAD_FILE, valid or not (what the audit page shows)."""
    heads = heads_read()
    return heads[-1] if heads else None


def newest_head(heads: Sequence[SignedHead]) -> SignedHead | None:
    """The valid head that counts the most events (sealers running at once may append out of order)."""
    valid = [head for head in heads if head.is_signature_valid]
    return max(valid, key=lambda head: head.sequence) if valid else None


# Verification ---------------------------------------------------------------------


@dataclass
class VerificationReport:
    is_intact: bool = True
    events_verified: int = 0
    pending_events: int = 0
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints_verified: int = 0
    signed_head: SignedHead | None = None  # the newest valid head of AUDIT_HEAD_FILE
    refused_events: int = 0
    broken_sequence: int | None = None
    problem: str = ""
    problems: list[str] = field(default_factory=list)
    verified_at: datetime.datetime = field(default_factory=timezone.now)

    def fail(self, sequence: int | None, message: str) -> None:
        if self.is_intact:
            self.is_intact = False
            self.broken_sequence = sequence
            self.problem = message
        if len(self.problems) < 20:
            self.problems.append(message)

    @property
    def summary(self) -> str:
        if self.is_intact:
            external = "matches" if self.signed_head is not None else "is not written yet"
            return (
                f"Audit chain intact: {self.events_verified} events verified up to #{self.head_sequence} "
                f"(head {self.head_hash[:16]}…), {self.checkpoints_verified} signed checkpoints match, "
                f"the newest signed head outside the database {external}, "
                f"{self.pending_events} events waiting to be sealed."
            )
        if self.broken_sequence is None:
            return f"Audit chain BROKEN: {self.problem}"
        return f"Audit chain BROKEN at event #{self.broken_sequence}: {self.problem}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "is_intact": self.is_intact,
            "summary": self.summary,
            "first_broken_sequence": self.broken_sequence,
            "problem": self.problem or None,
            "problems": self.problems,
            "events_verified": self.events_verified,
            "pending_events": self.pending_events,
            "head_sequence": self.head_sequence,
            "head_hash": self.head_hash,
            "checkpoints_verified": self.checkpoints_verified,
            "verified_at": format_time(self.verified_at),
        }


def verify_chain(*, chunk_size: int = VERIFY_CHUNK_SIZE) -> VerificationReport:
    """Walk the sealed chain and the checkpoints; report the first broken link. Never raises on tampering."""
    report = VerificationReport()
    checkpoints = _valid_checkpoints(report)
    external = _valid_external_head(report)
    expected_sequence = 0
    previous = GENESIS_HASH
    highest_format = 0
    for row in _sealed_rows(chunk_size):
        sequence, chain_format, stored_previous, stored_hash = row[0], row[1], row[2], row[3]
        expected_sequence += 1
        if sequence != expected_sequence:
            missing = (
                f"event #{expected_sequence}"
                if sequence == expected_sequence + 1
                else f"events #{expected_sequence} to #{sequence - 1}"
            )
            report.fail(expected_sequence, f"{missing} missing: the sequence jumps to #{sequence} (deleted rows).")
            expected_sequence = sequence
        if stored_previous != previous:
            report.fail(
                sequence,
                f"event #{sequence} links to previous hash {stored_previous[:16]}… but the event before it "
                f"hashes to {previous[:16]}… (a row was deleted, inserted or reordered).",
            )
        if chain_format not in CHAIN_FORMATS:
            report.fail(sequence, f"event #{sequence} names chain format {chain_format}, which does not exist.")
        elif chain_format < highest_format:
            report.fail(
                sequence,
                f"event #{sequence} uses chain format {chain_format} after events of format {highest_format}: "
                "formats never go back (the event was relabelled).",
            )
        else:
            if link_hash(stored_previous, sequence, row[4:], chain_format=chain_format) != stored_hash:
                report.fail(sequence, f"event #{sequence} does not match its hash: its content was edited.")
            highest_format = chain_format
        checkpoint = checkpoints.get(sequence)
        if checkpoint is not None and checkpoint.head_hash != stored_hash:
            report.fail(
                sequence,
                f"event #{sequence} has hash {stored_hash[:16]}… but checkpoint {checkpoint.id} signed "
                f"{checkpoint.head_hash[:16]}… for it (the chain was rewritten from there).",
            )
        if external is not None and sequence == external.sequence and external.head_hash != stored_hash:
            report.fail(
                sequence,
                f"event #{sequence} has hash {stored_hash[:16]}… but the signed head written to "
                f"{head_file_path()} at {external.created_at} names {external.head_hash[:16]}… for it "
                "(the chain was rewritten from there).",
            )
        previous = stored_hash
        report.events_verified += 1
        report.head_sequence = sequence
    report.head_hash = previous
    for checkpoint in checkpoints.values():
        if checkpoint.sequence > report.head_sequence:
            report.fail(
                report.head_sequence + 1,
                f"the chain ends at #{report.head_sequence} but checkpoint {checkpoint.id} signed at "
                f"{format_time(checkpoint.created_at)} covers {checkpoint.sequence} events: the tail was truncated.",
            )
        else:
            report.checkpoints_verified += 1
    if external is not None and external.sequence > report.head_sequence:
        report.fail(
            report.head_sequence + 1,
            f"the database holds {report.head_sequence} sealed events but the signed head written to "
            f"{head_file_path()} at {external.created_at} counts {external.sequence}: events were deleted or the "
            "audit tables truncated. (Only if this database was reset on purpose: move that file away.)",
        )
    _report_refused_events(report)
    report.pending_events = AuditEvent.objects.filter(sequence__isnull=True, seal_refusal="").count()
    return report


def _valid_external_head(report: VerificationReport) -> SignedHead | None:
    """The newest valid head of AUDIT_HEAD_FILE; lines that cannot be trusted are reported."""
    heads = heads_read()
    for head in heads:
        if not head.is_signature_valid:
            report.fail(None, f"a head in {head_file_path()} (#{head.sequence}, {head.created_at}) {head.problem}.")
    report.signed_head = newest_head(heads)
    return report.signed_head


def _report_refused_events(report: VerificationReport) -> None:
    refused = AuditEvent.objects.filter(sequence__isnull=True).exclude(seal_refusal="").order_by("id")
    report.refused_events = refused.count()
    for event_id, action, refusal in refused.values_list("id", "action", "seal_refusal")[:10]:
        report.fail(None, f"event id {event_id} ({action}) was refused by the sealer: {refusal}.")
    if report.refused_events > 10:
        report.fail(None, f"{report.refused_events} events in all were refused by the sealer.")


def _valid_checkpoints(report: VerificationReport) -> dict[int, AuditCheckpoint]:
    """Checkpoints whose signature holds, by sequence; forged ones are reported and not trusted."""
    key_id = signing_key_id()
    valid: dict[int, AuditCheckpoint] = {}
    for checkpoint in AuditCheckpoint.objects.order_by("sequence"):
        payload = checkpoint_payload(
            sequence=checkpoint.sequence,
            head_hash=checkpoint.head_hash,
            created_at=checkpoint.created_at,
            key_id=checkpoint.key_id,
        )
        if checkpoint.key_id != key_id:
            report.fail(
                checkpoint.sequence,
                f"checkpoint {checkpoint.id} was signed with key {checkpoint.key_id}, not the configured "
                f"AUDIT_SIGNING_KEY ({key_id}); verify with the key that signed it.",
            )
        elif not signature_matches(payload, checkpoint.signature):
            report.fail(checkpoint.sequence, f"checkpoint {checkpoint.id} has an invalid signature (forged).")
        else:
            valid[checkpoint.sequence] = checkpoint
    return valid


# PostgreSQL: read the chain with plain text columns (time formatted by the database exactly
# as format_time does, JSON as text parsed by orjson), in keyset-paginated chunks; Django's
# per-row converters would make verification several times slower. Outside a transaction a
# second thread fetches the next chunk while this one hashes (the database works meanwhile).
_SEALED_ROWS_SQL = """
SELECT sequence, chain_format, previous_hash, hash,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
       actor_type, actor_user_id, actor_api_key_id, actor_label, action, target_type, target_id,
       team_id, application_id, before::text, after::text, metadata::text, request_id, ip_address
FROM compliance_auditevent WHERE sequence > %s ORDER BY sequence LIMIT %s
"""
_JSON_POSITIONS = (14, 15, 16)  # before, after, metadata in _SEALED_ROWS_SQL


def _fetch_chunks(chunk_size: int) -> Iterator[list[tuple[Any, ...]]]:
    after = -(2**62)  # sequences are positive; tampered rows may not be
    with connection.cursor() as cursor:
        while True:
            cursor.execute(_SEALED_ROWS_SQL, [after, chunk_size])
            rows = cursor.fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]


def _prefetched_chunks(chunk_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """_fetch_chunks on another thread (its own connection), two chunks ahead."""
    chunks: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: list[tuple[Any, ...]] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for rows in _fetch_chunks(chunk_size):
                if not put(rows):
                    return
            put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the consuming thread, which raises it
            put(error)
        finally:
            connections.close_all()  # this thread's connection only

    producer = threading.Thread(target=produce, name="audit-verify-fetch", daemon=True)
    producer.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join(timeout=10)


def _sealed_rows(chunk_size: int) -> Iterator[Sequence[Any]]:
    """(sequence, chain_format, previous_hash, hash, *CONTENT_FIELDS) of sealed events in chain order."""
    if connection.vendor != "postgresql":
        yield from (
            AuditEvent.objects.filter(sequence__isnull=False)
            .order_by("sequence")
            .values_list("sequence", "chain_format", "previous_hash", "hash", *CONTENT_FIELDS)
            .iterator(chunk_size=chunk_size)
        )
        return
    # Inside a transaction another connection would not see this one's writes: fetch here.
    chunks = _fetch_chunks(chunk_size) if connection.in_atomic_block else _prefetched_chunks(chunk_size)
    for rows in chunks:
        for row in rows:
            values = list(row)
            for position in _JSON_POSITIONS:
                values[position] = load_json(values[position])
            yield values
