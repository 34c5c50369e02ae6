"""Call records the database rejected: kept aside, their budgets settled, replayable.

Records are fitted to their columns before they are stored (`observability.records`), so a
rejection means something unforeseen (a constraint, a bug). One rejected record must not
stop recording: `calls_store_isolating` stores a batch, and when the database rejects it,
splits it in halves until the rejected records are found. The others are stored; each
rejected one is appended to the dead-letter file (`<spool>/dead-letter/calls.jsonl`, one
JSON line per event, with the error), counted in a Prometheus metric and logged. Its
budget settlement is applied on its own right away, so that the reservation it closes does
not hold the budget until someone replays it.

`manage.py calls_deadletter list|show|replay` reads and replays the file. Replaying is
idempotent: calls are stored by id once, and a settlement already applied is not sent again.

The file is append-only, written under an exclusive lock (several gateway processes share a
spool folder). Its lines are events about a call id: `rejected` (the record, its settlement
and the error), `settled` (the settlement was applied), `replayed` (the call is stored).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.utils import timezone
from prometheus_client import Counter

from observability import hooks
from observability.records import fit_settlement
from observability.services import calls_store

logger = logging.getLogger(__name__)

DEAD_LETTERED = Counter(
    "controlplane_call_records_dead_lettered_total",
    "Call records the database rejected, kept in the spool's dead-letter file "
    "(manage.py calls_deadletter list), by error class.",
    ["reason"],
)

# SQLSTATE classes that are about the rows sent (data exception, integrity constraint
# violation, program limit exceeded): the same batch fails the same way however often it
# is retried. Anything else from the database (connection, deadlock, shutdown, a missing
# table during a deployment) is about the database, and the batch is retried as it is.
_REJECTION_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def is_rejection(error: BaseException) -> bool:
    """Whether `error` rejects the records stored (retrying cannot help) rather than the attempt."""
    sqlstate = getattr(error.__cause__, "sqlstate", None) or getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in _REJECTION_SQLSTATE_CLASSES
    if isinstance(error, DatabaseError):
        # No SQLSTATE: psycopg's client-side checks (a NUL in text is a DataError) or SQLite.
        return isinstance(error, DataError | IntegrityError)
    return True  # a Python error turning these records into rows (a malformed id or date)


def dead_letter_path(spool: Path) -> Path:
    return spool / "dead-letter" / "calls.jsonl"


@dataclass
class DeadLetter:
    """Everything the file says about one call id (a record may be rejected more than once)."""

    call_id: str
    rejected_at: str
    error: str
    record: dict[str, Any]
    settlement: dict[str, Any] | None
    times_rejected: int = 1
    is_settled: bool = False
    replayed_at: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_replayed(self) -> bool:
        return self.replayed_at is not None

    def record_to_replay(self) -> dict[str, Any]:
        """The record, with its settlement only if it was not applied when it was dead-lettered."""
        if self.settlement is not None and not self.is_settled:
            return {**self.record, "budget_settlement": self.settlement}
        return dict(self.record)


class DeadLetters:
    def __init__(self, spool: Path) -> None:
        self.path = dead_letter_path(spool)

    @contextmanager
    def _locked(self) -> Iterator[IO[bytes]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _append(handle: IO[bytes], event: dict[str, Any]) -> None:
        handle.write(orjson.dumps(event) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())  # rare, and the only copy once the spool segment is deleted

    @staticmethod
    def _read(handle: IO[bytes]) -> dict[str, DeadLetter]:
        handle.seek(0)
        letters: dict[str, DeadLetter] = {}
        for line in handle:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its record is still in the spool
            call_id = str(event.get("id", ""))
            letter = letters.get(call_id)
            if event.get("kind") == "rejected":
                if letter is None:
                    letter = letters[call_id] = DeadLetter(
                        call_id=call_id,
                        rejected_at=event["at"],
                        error=event["error"],
                        record=event["record"],
                        settlement=event.get("settlement"),
                        times_rejected=0,
                    )
                letter.times_rejected += 1
                letter.error = event["error"]
            if letter is None:
                continue
            letter.events.append(event)
            if event.get("kind") == "settled":
                letter.is_settled = True
            elif event.get("kind") == "replayed":
                letter.replayed_at = event["at"]
        return letters

    def entries(self) -> list[DeadLetter]:
        if not self.path.exists():
            return []
        with self._locked() as handle:
            return list(self._read(handle).values())

    def get(self, call_id: str) -> DeadLetter | None:
        return next((letter for letter in self.entries() if letter.call_id == call_id), None)

    def add(self, *, record: dict[str, Any], error: BaseException) -> None:
        """Keep `record` aside with `error`, and settle the budget reservation it closes (once)."""
        call_id = str(record.get("id", ""))
        settlement = fit_settlement(record["budget_settlement"]) if record.get("budget_settlement") else None
        stored = {name: value for name, value in record.items() if name != "budget_settlement"}
        message = f"{type(error).__name__}: {error}".strip()
        with self._locked() as handle:
            known = self._read(handle).get(call_id)
            self._append(
                handle,
                {
                    "kind": "rejected",
                    "id": call_id,
                    "at": timezone.now().isoformat(),
                    "error": message,
                    "record": stored,
                    "settlement": settlement,
                },
            )
            DEAD_LETTERED.labels(reason=type(error).__name__).inc()
            logger.error(
                "the database rejected call record %s; it is kept in %s (manage.py calls_deadletter): %s",
                call_id,
                self.path,
                message,
            )
            if settlement is None or (known is not None and known.is_settled):
                return
            # Under the file's lock, so that two processes recovering the same record do not
            # both settle it. A rejected settlement stays in the file, applied on replay.
            try:
                with transaction.atomic():
                    hooks.settlements_due(settlements=[settlement])
            except Exception as settle_error:
                if not is_rejection(settle_error):
                    raise  # the database is unreachable: the batch is retried, and settled then
                logger.exception("settling the budget of dead-lettered call %s failed", call_id)
                return
            self._append(handle, {"kind": "settled", "id": call_id, "at": timezone.now().isoformat()})

    def mark_replayed(self, call_id: str) -> None:
        with self._locked() as handle:
            self._append(handle, {"kind": "replayed", "id": call_id, "at": timezone.now().isoformat()})


@dataclass
class Isolated:
    stored: int = 0
    rejected: int = 0


def calls_store_isolating(
    *, records: Sequence[dict[str, Any]], dead_letters: DeadLetters, assume_new: bool = False
) -> Isolated:
    """Store `records`; those the database rejects go to `dead_letters`, the others are stored.

    The batch is stored in one transaction; when it is rejected, each half is stored on its
    own, recursively, down to the single records at fault (a few transactions per bad record).
    An error that is not about the records (the database is down) is raised as it is: the
    caller retries the batch later, and what was stored meanwhile is skipped then (by id).
    """
    result = Isolated()
    pending: list[Sequence[dict[str, Any]]] = [records]
    while pending:
        part = pending.pop()
        if not part:
            continue
        try:
            result.stored += len(calls_store(records=part, assume_new=assume_new))
        except Exception as error:
            if not is_rejection(error):
                raise
            if len(part) == 1:
                dead_letters.add(record=part[0], error=error)
                result.rejected += 1
            else:
                middle = len(part) // 2
                pending.extend((part[middle:], part[:middle]))  # the first half first
    return result
