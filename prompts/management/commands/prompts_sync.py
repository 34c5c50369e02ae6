"""prompts_sync DIR: create versions for changed prompt files; nothing is written if any file is invalid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from prompts import services, yaml_files
from prompts.management.commands._team import team_from_option


class Command(BaseCommand):
    help = "Sync a folder of prompt YAML files (one per prompt) into the registry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--team", help="Team id or name (default: the only team).")
        parser.add_argument("--label", help="Point this label at each prompt's newest version, e.g. staging.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory.")
        team = team_from_option(options["team"])
        result = yaml_files.read_directory(directory)
        if result.errors:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"{len(result.errors)} invalid file(s); nothing was written.")
        if not result.files:
            self.stdout.write(f"No prompt files (*.yaml, *.yml) in {directory}.")
            return
        try:
            lines = services.prompt_files_sync(
                team=team, files=result.files, label=options["label"], is_dry_run=options["dry_run"]
            )
        except ApplicationError as error:
            raise CommandError(f"{error.message} Nothing was written.") from None
        for line in lines:
            self.stdout.write(line)
        changed = sum(1 for line in lines if "unchanged" not in line)
        suffix = " (dry run: nothing written)" if options["dry_run"] else ""
        self.stdout.write(f"{len(result.files)} prompt file(s), {changed} change(s){suffix}.")
