from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from observability.recorder import CallRecorder


class Command(BaseCommand):
    help = (
        "Store the call records left in spool files by gateway processes that stopped before "
        "storing them (idempotent: records already stored are skipped). Records the database "
        "rejects are dead-lettered (manage.py calls_deadletter), never left to block the spool."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        recorder = CallRecorder(Path(settings.GATEWAY_SPOOL_DIR))
        count = recorder.recover_orphans()
        self.stdout.write(f"Recovered {count} spooled call records.")
        if recorder.rejected_total:
            self.stdout.write(
                f"{recorder.rejected_total} of them were rejected by the database and dead-lettered in "
                f"{recorder.dead_letters.path}; see `manage.py calls_deadletter list`."
            )
