"""The gateway's call recorder: off the response path, and nothing acknowledged is lost.

`submit()` appends the record to this process's spool file (one JSON line, flushed to the
operating system) and queues it; a writer thread stores queued records in batches
(`services.calls_store`, one transaction per batch). A spool segment is deleted once all
its records are stored. Each live process holds an exclusive lock on its segment; a segment
nobody holds (its process crashed, or the database was down when it stopped) is replayed
by `recover_orphans()`, idempotently, when a recorder starts and by `manage.py calls_recover`.

A record the database rejects never stops the writer: the batch is split until the record
is found, the others are stored and it is dead-lettered (`observability.deadletter`: kept
in the spool's `dead-letter/` folder, its budget settled, replayable with
`manage.py calls_deadletter`).

What is at risk: records written to the spool but not yet stored survive a process crash;
an operating-system crash can lose what the kernel had not yet written to disk (set
GATEWAY_SPOOL_FSYNC=true to fsync every record, at a latency cost).
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings

from core.db import work_cycle
from observability.deadletter import DeadLetters, calls_store_isolating

logger = logging.getLogger(__name__)


class _Segment:
    def __init__(self, directory: Path) -> None:
        self.path = directory / f"calls-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self.file: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - held open for the segment's life
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.written = 0
        self.stored = 0
        self.is_closed = False

    def close_and_delete(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class CallRecorder:
    def __init__(self, directory: Path, *, batch_size: int = 500, interval: float = 0.05, fsync: bool = False) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.batch_size = batch_size
        self.interval = interval
        self.fsync = fsync
        self._lock = threading.Lock()
        self._queue: deque[tuple[_Segment, dict[str, Any]]] = deque()
        self._segment: _Segment | None = None
        self._wake = threading.Event()
        self._drain = threading.Event()  # flush(): store everything now, not one batch per interval
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.dead_letters = DeadLetters(directory)
        self.stored_total = 0
        self.rejected_total = 0  # dead-lettered (observability.deadletter)
        self.failures = 0

    # Producer side (request path) ---------------------------------------------------

    def submit(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._ensure_thread()
            segment = self._segment
            if segment is None or segment.written >= 1000:
                if segment is not None:
                    segment.is_closed = True
                    self._delete_if_done(segment)
                segment = self._segment = _Segment(self.directory)
            segment.file.write(line)
            segment.file.flush()
            if self.fsync:
                os.fsync(segment.file.fileno())
            segment.written += 1
            self._queue.append((segment, record))
            self._idle.clear()
            full = len(self._queue) >= self.batch_size
        if full:  # otherwise the writer stores what accumulated every `interval` (one transaction per batch)
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted record is stored (tests, shutdown)."""
        self._drain.set()
        self._wake.set()
        return self._idle.wait(timeout)

    # Writer side ------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            if self._pid != os.getpid():  # forked: the parent's queue and segment are not ours
                self._queue.clear()
                self._segment = None
                self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="call-recorder", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            while True:
                with self._lock:
                    batch = [self._queue[index] for index in range(min(self.batch_size, len(self._queue)))]
                if not batch:
                    break
                try:
                    with work_cycle():
                        outcome = calls_store_isolating(
                            records=[record for _, record in batch], dead_letters=self.dead_letters, assume_new=True
                        )
                except Exception:  # not about the records (the database is unreachable): retry them all
                    self.failures += 1
                    logger.exception("storing call records failed; will retry", extra={"records": len(batch)})
                    time.sleep(min(5.0, 0.2 * self.failures))
                    continue
                self.failures = 0
                with self._lock:
                    for _ in batch:  # stored or dead-lettered: either way out of the spool
                        segment, _record = self._queue.popleft()
                        segment.stored += 1
                        self._delete_if_done(segment)
                    self.stored_total += len(batch) - outcome.rejected
                    self.rejected_total += outcome.rejected
                if len(batch) < self.batch_size and not self._drain.is_set():
                    # No backlog: what arrived while this batch was stored waits for the next
                    # interval, so that batches grow with the load (one record per batch costs
                    # several times more per record than a batch of ten).
                    break
            with self._lock:
                if not self._queue:
                    self._drain.clear()
                    self._idle.set()

    def _delete_if_done(self, segment: _Segment) -> None:
        if segment.stored == segment.written and (segment.is_closed or not self._queue):
            if segment is self._segment:
                self._segment = None
            segment.close_and_delete()

    # Recovery -------------------------------------------------------------------------

    def recover_orphans(self) -> int:
        """Store the records of segments no live process holds; returns how many were read.

        Records the database rejects are dead-lettered like the writer's (a poisoned line
        never blocks its segment); an unreachable database raises, and the segment stays."""
        recovered = 0
        for path in sorted(self.directory.glob("calls-*.jsonl")):
            with open(path, "rb") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
                records = []
                for line in handle:
                    try:
                        item = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        item = None
                    if isinstance(item, dict):
                        records.append(item)
                    else:
                        logger.warning("skipping a torn spool line", extra={"spool": str(path)})
                for start in range(0, len(records), self.batch_size):
                    outcome = calls_store_isolating(
                        records=records[start : start + self.batch_size], dead_letters=self.dead_letters
                    )
                    self.rejected_total += outcome.rejected
                recovered += len(records)
            path.unlink(missing_ok=True)
        return recovered


_recorder: CallRecorder | None = None
_recorder_lock = threading.Lock()


def recorder() -> CallRecorder:
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                instance = CallRecorder(
                    Path(settings.GATEWAY_SPOOL_DIR),
                    batch_size=settings.GATEWAY_RECORDER_BATCH_SIZE,
                    interval=settings.GATEWAY_RECORDER_INTERVAL_SECONDS,
                    fsync=settings.GATEWAY_SPOOL_FSYNC,
                )
                try:
                    instance.recover_orphans()
                except Exception:
                    logger.exception("recovering spooled call records failed")
                atexit.register(instance.flush, 5.0)
                _recorder = instance
    return _recorder
