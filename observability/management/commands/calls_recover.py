from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from observability.recorder import CallRecorder


class Command(BaseCommand):
    help = (
        "Store the call records left in spool files by gateway processes that stopped before "
        "storing them (idempotent: records already stored are skipped)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = CallRecorder(Path(settings.GATEWAY_SPOOL_DIR)).recover_orphans()
        self.stdout.write(f"Recovered {count} spooled call records.")
