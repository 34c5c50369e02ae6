from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role
from accounts.services import provisioning_key_create
from core.classification import Clearance


class Command(BaseCommand):
    help = (
        "Create an API key for an application, creating the team and application when missing. "
        "Prints only the secret on stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True, help="Team name (created when missing).")
        parser.add_argument("--application", required=True, help="Application name (created when missing).")
        parser.add_argument("--role", default=Role.APPLICATION, choices=[value for value, _ in Role.choices])
        parser.add_argument("--clearance", default="internal", choices=Clearance.level_names())
        parser.add_argument("--name", default="provisioned", help="A label for the key.")

    def handle(self, *args: Any, **options: Any) -> None:
        team_name = options["team"].strip()
        application_name = options["application"].strip()
        if not team_name or not application_name:
            raise CommandError("--team and --application must not be empty.")
        secret = provisioning_key_create(
            team_name=team_name,
            application_name=application_name,
            role=options["role"],
            clearance=int(Clearance.from_name(options["clearance"])),
            name=options["name"],
        )
        self.stdout.write(secret)
