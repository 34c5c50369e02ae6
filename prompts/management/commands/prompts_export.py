"""prompts_export DIR: write each prompt's newest version as DIR/<name>.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from prompts import yaml_files
from prompts.management.commands._team import team_from_option
from prompts.models import Prompt, PromptVersion


class Command(BaseCommand):
    help = "Write the registry back to YAML files (one per prompt); sync of the result is a no-op."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--team", help="Team id or name (default: the only team).")

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        directory.mkdir(parents=True, exist_ok=True)
        team = team_from_option(options["team"])
        written = 0
        for prompt in Prompt.objects.filter(team=team).order_by("name"):
            newest = PromptVersion.objects.filter(prompt=prompt).order_by("-number").first()
            if newest is None:
                self.stdout.write(f"{prompt.name}: skipped (no versions)")
                continue
            path = directory / f"{prompt.name}.yaml"
            path.write_text(yaml_files.dump_prompt(prompt, newest), encoding="utf-8")
            self.stdout.write(f"{prompt.name}: wrote version {newest.number} to {path}")
            written += 1
        self.stdout.write(f"{written} prompt file(s) written to {directory}.")
