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

from accounts.models import Application, Clearance, Role, Team
from accounts.services import api_key_create
from accounts.tests.factories import ApplicationFactory, MembershipFactory, TeamFactory, UserFactory


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
