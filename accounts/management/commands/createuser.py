from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import MEMBER_ROLES, Role, Team
from accounts.services import user_create
from core.classification import Clearance
from core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Create a user account and make it a member of a team, non-interactively. The password is read "
        "from stdin with --password-stdin; otherwise one is generated and printed once on stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--team", required=True, help="Name of an existing team.")
        parser.add_argument("--role", default=Role.VIEWER, choices=[value for value, _ in MEMBER_ROLES])
        parser.add_argument("--clearance", default="internal", choices=Clearance.level_names())
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read the password from the first line of stdin."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        team = Team.objects.filter(name__iexact=options["team"].strip()).first()
        if team is None:
            raise CommandError(f"No team named '{options['team']}'; create it first (Settings, or the API).")
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin was given but stdin held no password.")
        try:
            user, generated = user_create(
                caller=None,
                team=team,
                username=options["username"],
                email=options["email"],
                role=options["role"],
                clearance=int(Clearance.from_name(options["clearance"])),
                password=password,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if generated is not None:
            self.stdout.write(generated)  # the only time it is shown
        self.stderr.write(f"Created {user.get_username()} as {options['role']} in {team.name}.")
