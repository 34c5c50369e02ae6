from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.keys import secret_hash
from accounts.models import ApiKey, Application, Role, Team
from accounts.services import api_key_authenticate
from core.classification import Clearance

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_key_creates_what_is_missing_and_prints_only_the_secret():
    output = run(
        "create_api_key",
        "--team",
        "Search",
        "--application",
        "indexer",
        "--role",
        "manager",
        "--clearance",
        "confidential",
    )

    secret = output.strip()
    assert output == secret + "\n"
    api_key = ApiKey.objects.get()
    assert api_key.secret_hash == secret_hash(secret)
    assert (api_key.application.name, api_key.application.team.name) == ("indexer", "Search")
    assert (api_key.role, api_key.clearance) == (Role.MANAGER, Clearance.CONFIDENTIAL)
    assert api_key_authenticate(secret) == api_key


def test_create_api_key_reuses_an_existing_team_and_application():
    run("create_api_key", "--team", "Search", "--application", "indexer")
    run("create_api_key", "--team", "Search", "--application", "indexer")

    assert Team.objects.count() == 1
    assert Application.objects.count() == 1
    assert ApiKey.objects.count() == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--team", "T", "--application", "A", "--role", "overlord"],
        ["--team", "T", "--application", "A", "--clearance", "secret"],
        ["--team", " ", "--application", "A"],
    ],
)
def test_create_api_key_rejects_bad_arguments_and_writes_nothing(args):
    with pytest.raises(CommandError):
        call_command("create_api_key", *args, stdout=StringIO(), stderr=StringIO())

    assert not Team.objects.exists()
    assert not ApiKey.objects.exists()


def test_seed_demo_is_idempotent_and_rotates_the_key_and_password():
    first = run("seed_demo")
    second = run("seed_demo")

    def parse(output: str) -> tuple[str, str]:
        lines = dict(line.split(":", 1) for line in output.splitlines() if ":" in line and not line.startswith(" "))
        return lines["Login"].split("/")[1].strip(), lines["API key"].strip()

    first_password, first_key = parse(first)
    second_password, second_key = parse(second)
    assert Team.objects.filter(name="Demo").count() == 1
    assert Application.objects.filter(name="demo-app").count() == 1
    assert authenticate(username="admin", password=second_password) is not None
    assert authenticate(username="admin", password=first_password) is None
    assert api_key_authenticate(second_key).application.name == "demo-app"
    assert ApiKey.objects.get(prefix=first_key.split("_")[1]).is_revoked
