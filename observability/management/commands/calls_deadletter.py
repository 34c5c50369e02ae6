from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from observability.deadletter import DeadLetter, DeadLetters
from observability.services import calls_store


class Command(BaseCommand):
    help = (
        "Call records the database rejected (kept in the spool's dead-letter file): `list` them, "
        "`show ID` one with its error, `replay [ID ...]` stores them again (all pending ones "
        "without ids; idempotent: a stored call is not stored twice, a settled budget not charged twice)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "show", "replay"])
        parser.add_argument("call_ids", nargs="*", metavar="ID", help="Call ids (show needs one).")

    def handle(self, *args: Any, **options: Any) -> None:
        dead_letters = DeadLetters(Path(settings.GATEWAY_SPOOL_DIR))
        action, call_ids = options["action"], options["call_ids"]
        if action == "list":
            self._list(dead_letters)
        elif action == "show":
            if len(call_ids) != 1:
                raise CommandError("Name one call id: calls_deadletter show ID (calls_deadletter list shows them).")
            self.stdout.write(
                orjson.dumps(_as_dict(self._get(dead_letters, call_ids[0])), option=orjson.OPT_INDENT_2).decode()
            )
        else:
            self._replay(dead_letters, call_ids)

    def _get(self, dead_letters: DeadLetters, call_id: str) -> DeadLetter:
        letter = dead_letters.get(call_id)
        if letter is None:
            raise CommandError(
                f"No dead-lettered call record has the id '{call_id}'; calls_deadletter list shows them."
            )
        return letter

    def _list(self, dead_letters: DeadLetters) -> None:
        letters = dead_letters.entries()
        for letter in letters:
            state = "replayed" if letter.is_replayed else "pending"
            budget = "-" if letter.settlement is None else ("settled" if letter.is_settled else "unsettled")
            self.stdout.write(f"{letter.call_id}  {letter.rejected_at}  {state}  budget:{budget}  {letter.error}")
        pending = sum(1 for letter in letters if not letter.is_replayed)
        self.stdout.write(f"{len(letters)} dead-lettered call records, {pending} pending, in {dead_letters.path}.")

    def _replay(self, dead_letters: DeadLetters, call_ids: list[str]) -> None:
        if call_ids:
            letters = [self._get(dead_letters, call_id) for call_id in call_ids]
        else:
            letters = [letter for letter in dead_letters.entries() if not letter.is_replayed]
        replayed, failed = 0, []
        for letter in letters:
            try:
                calls_store(records=[letter.record_to_replay()])
            except Exception as error:  # noqa: BLE001 - reported with its id; the others are replayed
                failed.append(f"{letter.call_id}: {type(error).__name__}: {error}")
                continue
            dead_letters.mark_replayed(letter.call_id)
            replayed += 1
        self.stdout.write(f"Replayed {replayed} dead-lettered call records.")
        if failed:
            raise CommandError(f"{len(failed)} still rejected:\n" + "\n".join(failed))


def _as_dict(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.call_id,
        "rejected_at": letter.rejected_at,
        "times_rejected": letter.times_rejected,
        "error": letter.error,
        "is_settled": letter.is_settled,
        "replayed_at": letter.replayed_at,
        "settlement": letter.settlement,
        "record": letter.record,
    }
