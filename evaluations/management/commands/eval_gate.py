"""CI: judge a prompt version with the evaluation gate of a label, as a label move would.

    python manage.py eval_gate --prompt NAME --candidate VERSION --against LABEL \
        [--team T] [--dataset D] [--report report.md] [--wait SECONDS]

Exit status: 0 the gate passes, 1 it fails, 2 an error (or the runs did not finish within
--wait). The same verdict as POST /api/v1/evaluations/gate/ (evaluations.services.gates.gate_check_ci).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts import selectors as account_selectors
from core.errors import ApplicationError
from evaluations.gate_report import verdict_markdown
from evaluations.services.gates import GateVerdict, gate_check_ci, gate_check_record
from evaluations.types import GateCheckStatus

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
POLL_SECONDS = 2.0


class Command(BaseCommand):
    help = "Judge a prompt version with a label's evaluation gate (exit 0 pass, 1 fail, 2 error)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prompt", required=True, help="The prompt's name.")
        parser.add_argument("--candidate", required=True, type=int, help="The version to judge.")
        parser.add_argument("--against", required=True, help="The gated label (its current version is compared).")
        parser.add_argument("--team", help="The team, by id or name (needed when there are several).")
        parser.add_argument("--dataset", help="The gate's dataset, by id or name (checked, not substituted).")
        parser.add_argument("--report", help="Write the markdown report here (a pull-request comment).")
        parser.add_argument(
            "--wait", type=float, default=0.0, help="Seconds to wait for the gate's runs to finish (default: 0)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sys.exit(self._run(options))

    def _fail(self, message: str) -> int:
        self.stderr.write(f"eval_gate: {message}")
        return EXIT_ERROR

    def _run(self, options: dict[str, Any]) -> int:
        team = (
            account_selectors.team_of_id_or_name(value=options["team"])
            if options.get("team")
            else account_selectors.team_if_only_one()
        )
        if team is None:
            return self._fail(
                f"no team with id or name {options['team']!r}."
                if options.get("team")
                else "pass --team (an id or a name): there is not exactly one team."
            )
        deadline = time.monotonic() + max(0.0, options["wait"])
        try:
            while True:
                verdict = gate_check_ci(
                    caller=None,
                    team_id=team.pk,
                    prompt_name=options["prompt"],
                    candidate_version=options["candidate"],
                    against_label=options["against"],
                    dataset_id=options.get("dataset"),
                    record=False,
                )
                if verdict.status != GateCheckStatus.PENDING or time.monotonic() >= deadline:
                    break
                time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            gate_check_record(verdict=verdict, caller=None, source="ci")
        except ApplicationError as error:
            return self._fail(error.message)
        return self._finish(verdict, options.get("report"))

    def _finish(self, verdict: GateVerdict, report: str | None) -> int:
        markdown = verdict_markdown(verdict)
        if report:
            Path(report).write_text(markdown, encoding="utf-8")
        self.stdout.write(markdown)
        if verdict.status == GateCheckStatus.PASSED:
            return EXIT_PASSED
        if verdict.status == GateCheckStatus.FAILED:
            return EXIT_FAILED
        self.stderr.write("eval_gate: the gate's runs have not finished; run again later or pass a longer --wait.")
        return EXIT_ERROR
