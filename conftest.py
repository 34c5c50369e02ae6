"""Fixtures shared by every app: people with roles in two teams, clients for each, and a
real Celery worker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Application, Team
from accounts.services import api_key_create
from accounts.tests.factories import ApplicationFactory, MembershipFactory, TeamFactory, UserFactory
from accounts.types import Role
from core.classification import Clearance


@dataclass
class TeamWorld:
    team: Team
    application: Application
    members: dict[str, Any]  # role -> user


@pytest.fixture
def make_team(db: None) -> Callable[..., TeamWorld]:
    """A team with one application and one member per role."""

    def build(name: str | None = None) -> TeamWorld:
        team = TeamFactory.create(**({"name": name} if name else {}))
        application = ApplicationFactory.create(team=team)
        members = {}
        for role, _ in Role.choices:
            if role == Role.APPLICATION:
                continue
            user = UserFactory.create()
            MembershipFactory.create(user=user, team=team, role=role, clearance=Clearance.CONFIDENTIAL)
            members[role] = user
        return TeamWorld(team=team, application=application, members=members)

    return build


@pytest.fixture
def team_a(make_team: Callable[..., TeamWorld]) -> TeamWorld:
    return make_team("Team A")


@pytest.fixture
def team_b(make_team: Callable[..., TeamWorld]) -> TeamWorld:
    return make_team("Team B")


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """An API client logged in as a user (session authentication)."""

    def build(user: Any) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return build


@pytest.fixture
def page_client_for() -> Callable[[Any], Client]:
    def build(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return build


# One client per person of team A, and an outsider: an admin of team B, who holds every right
# in a team that is not A's, so that refusing them proves team A is hidden from anyone outside
# it. A module whose people use pages instead of the API overrides `client_for` with
# `page_client_for`.
@pytest.fixture
def admin(team_a: TeamWorld, client_for: Callable[[Any], Client]) -> Client:
    return client_for(team_a.members[Role.ADMIN])


@pytest.fixture
def manager(team_a: TeamWorld, client_for: Callable[[Any], Client]) -> Client:
    return client_for(team_a.members[Role.MANAGER])


@pytest.fixture
def engineer(team_a: TeamWorld, client_for: Callable[[Any], Client]) -> Client:
    return client_for(team_a.members[Role.PROMPT_ENGINEER])


@pytest.fixture
def viewer(team_a: TeamWorld, client_for: Callable[[Any], Client]) -> Client:
    return client_for(team_a.members[Role.VIEWER])


@pytest.fixture
def outsider(team_b: TeamWorld, client_for: Callable[[Any], Client]) -> Client:
    """An admin of team B: must see and change nothing of team A."""
    return client_for(team_b.members[Role.ADMIN])


@pytest.fixture
def key_client_for() -> Callable[..., APIClient]:
    """An API client holding a new key of `application` with the given role and clearance."""

    def build(application: Application, role: str = Role.APPLICATION, clearance: int = Clearance.INTERNAL) -> APIClient:
        _, secret = api_key_create(caller=None, application=application, name="test", role=role, clearance=clearance)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        client.secret = secret  # type: ignore[attr-defined]
        return client

    return build


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[Any]:
    """A real Celery worker, in a thread, consuming from the configured broker (filesystem or Redis)."""
    from celery.contrib.testing.worker import start_worker

    from controlplane.celery import app

    # Starting a worker reconfigures the root logger (a second start leaves it at WARNING), which
    # would silence later tests' log assertions: put its level back afterwards.
    root_level = logging.getLogger().level
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"
        ) as worker:
            yield worker
    finally:
        logging.getLogger().setLevel(root_level)


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    """Test databases reuse ids, so per-process caches keyed by id must not outlive a test.
    Clearing the shared cache drops every generation token, which invalidates them all."""
    from django.core.cache import cache

    from gateway import keys

    cache.clear()
    keys.forget_all()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """Django empties the tables of transactional tests with TRUNCATE, which the audit tables
    refuse unless the session sets controlplane.allow_audit_truncate (compliance migration
    0004): set it for the test suite's own role, in the test database only."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        cursor.execute(f"ALTER ROLE CURRENT_USER IN DATABASE {name} SET controlplane.allow_audit_truncate = 'on'")
        cursor.execute("SET controlplane.allow_audit_truncate = 'on'")  # this session began before


@pytest.fixture(autouse=True)
def audit_head_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Each test its own file of signed audit heads: a head outlives the test's database rows
    (compliance/chain.py), and another test's head would make the chain look truncated."""
    from uuid import uuid4

    from django.conf import settings

    previous = settings.AUDIT_HEAD_FILE
    path = str(tmp_path_factory.getbasetemp() / f"audit-heads-{uuid4().hex}.jsonl")
    settings.AUDIT_HEAD_FILE = path
    try:
        yield path
    finally:
        settings.AUDIT_HEAD_FILE = previous
