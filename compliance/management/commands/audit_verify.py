"""`python manage.py audit_verify`: exit 0 when the audit chain is intact, 1 with the first broken link."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from compliance import services


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and signed checkpoints; exit 1 and print the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        report = services.audit_verify(caller=None)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif report.is_intact:
            self.stdout.write(self.style.SUCCESS(report.summary))
        else:
            self.stdout.write(self.style.ERROR(report.summary))
            for problem in report.problems[1:]:
                self.stdout.write(f"  also: {problem}")
        if not report.is_intact:
            raise SystemExit(1)
