from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.services import demo_environment_ensure


class Command(BaseCommand):
    help = (
        "Seed the demo team, application and admin user for a local run, reset the admin's "
        "password and rotate the demo API key. Prints the login and the key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="", help="Default: a new random password on every run.")

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or secrets.token_urlsafe(12)
        application, secret = demo_environment_ensure(username=options["username"], password=password)
        self.stdout.write(f"Login:    {options['username']} / {password}")
        self.stdout.write(f"API key:  {secret}")
        self.stdout.write(f"          (application '{application.name}' of team '{application.team.name}')")
