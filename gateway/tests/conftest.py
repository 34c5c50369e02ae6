"""A live gateway (uvicorn serving controlplane.asgi in a thread) and fake providers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import uvicorn
from django.db import OperationalError

from accounts.models import Application
from accounts.services import api_key_create
from accounts.types import Role
from core.classification import Clearance
from gateway import keys
from gateway.catalog import catalog_changed
from gateway.models import LanguageModel, Provider
from gateway.tests.factories import LanguageModelFactory, ProviderFactory
from gateway.tests.fake_upstream import FakeUpstream
from observability.models import Call
from observability.recorder import recorder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_gateway(transactional_db: None) -> Iterator[str]:
    """The base URL of a real server running the project's ASGI application."""
    from controlplane.asgi import application

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="live-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the gateway did not start"
    catalog_changed()
    keys.forget_all()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    recorder().flush()


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["upstream-model"]) as upstream:
        yield upstream


@pytest.fixture
def second_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["backup-model"]) as upstream:
        yield upstream


def provider_for(upstream: FakeUpstream, *, name: str = "fake", team: Any = None, **options: Any) -> Provider:
    return ProviderFactory.create(team=team, name=name, base_url=upstream.base_url, **options)


def model_for(provider: Provider, *, name: str = "fake-model", team: Any = None, **options: Any) -> LanguageModel:
    model = LanguageModelFactory.create(team=team, name=name, provider=provider, **options)
    catalog_changed()
    return model


@pytest.fixture
def provider_factory(db: None) -> type[ProviderFactory]:
    return ProviderFactory


@pytest.fixture
def language_model_factory(db: None) -> type[LanguageModelFactory]:
    return LanguageModelFactory


@dataclass
class GatewayClient:
    sdk: openai.OpenAI
    secret: str
    base_url: str
    application: Application


@pytest.fixture
def gateway_client(live_gateway: str, team_a: Any) -> GatewayClient:
    _, secret = api_key_create(
        caller=None,
        application=team_a.application,
        name="gateway-test",
        role=Role.APPLICATION,
        clearance=Clearance.INTERNAL,
    )
    sdk = openai.OpenAI(base_url=f"{live_gateway}/v1", api_key=secret, max_retries=0, timeout=30)
    return GatewayClient(sdk=sdk, secret=secret, base_url=live_gateway, application=team_a.application)


def stored_calls(*, expected: int = 0, **filters: Any) -> list[Call]:
    """The stored calls, waiting (up to 10 s) until at least `expected` are there: a streamed
    call is recorded just after its last chunk reaches the client."""
    deadline = time.monotonic() + 10
    while True:
        recorder().flush()
        try:
            calls = list(Call.objects.filter(**filters).order_by("id"))
        except OperationalError:  # in-memory SQLite locks the table while the recorder writes
            calls = []
        if (calls and len(calls) >= expected) or (expected == 0 and not calls) or time.monotonic() > deadline:
            if expected == 0:
                return list(Call.objects.filter(**filters).order_by("id"))
            return calls
        time.sleep(0.02)
