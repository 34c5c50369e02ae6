"""gateway_sync FILE: load providers, models and routing from a YAML file (catalog as code).

Each model's price belongs to that model of the catalog (`--team`: the team's model, whatever
its name); a changed price applies from now on and is audited. Idempotent (a second run
changes nothing and says so); all or nothing; `--dry-run` writes
nothing; `--team T` for a team's entries (default: the shared catalog).

    providers:
      - name: openai
        base_url: https://api.openai.com/v1
        api_key: ${OPENAI_API_KEY}        # an environment variable: secrets stay out of the file
        read_timeout_seconds: 60
    models:
      - name: gpt-4o
        provider: openai
        provider_model: gpt-4o
        context_window: 128000
        tier: large
        fallbacks: [gpt-4o-mini]
        price: {input_per_million: 2.5, output_per_million: 10, cached_input_per_million: 1.25}
      - name: team-llama
        provider: openai
        provider_model: llama-3.1-8b
        price: {is_free: true}              # says it costs nothing; a model with no price at all
                                            # is refused while a budget applies to its calls
    routing:
      - application: demo-app
        team: Demo                          # optional with --team
        model: gpt-4o
        fallbacks: [smollm2-135m]

Reading the file (gateway.services.catalog_file) names `file:line` in every error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.selectors import team_of_id_or_name
from gateway import services

if TYPE_CHECKING:
    from accounts.models import Team


class Command(BaseCommand):
    help = "Load providers, models and routing from a YAML file into the catalog (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--team", help="Team id or name for team entries (default: the shared catalog).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        team = _team(options["team"])
        result = services.read_catalog_file(path)
        if result.errors or result.catalog is None:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"{len(result.errors)} error(s) in {path}; nothing was written.")
        catalog = result.catalog
        try:
            lines, changes = services.catalog_apply(
                team=team,
                providers=catalog.providers,
                models=catalog.models,
                routing=catalog.routing,
                is_dry_run=options["dry_run"],
            )
        except services.CatalogEntryError as error:
            self.stderr.write(result.error(error.section, error.index, error.error.param, error.error.message))
            raise CommandError(f"1 error in {path}; nothing was written.") from None
        for line in lines:
            self.stdout.write(line)
        where = f"team {team.name}" if team is not None else "the shared catalog"
        if changes == 0:
            self.stdout.write(f"Nothing to change: {where} already matches {path}.")
        elif options["dry_run"]:
            self.stdout.write(f"{changes} change(s) to {where} (dry run: nothing written).")
        else:
            self.stdout.write(f"{changes} change(s) to {where}.")


def _team(value: str | None) -> Team | None:
    if not value:
        return None
    team = team_of_id_or_name(value=value)
    if team is None:
        raise CommandError(f"No team with id or name '{value}'.")
    return team
