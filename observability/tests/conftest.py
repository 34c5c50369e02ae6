"""Call records for tests, stored through the same service as the gateway's recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from compliance.guardrails import services as guardrail_services
from costs.pricing import price_cache
from gateway.tests.conftest import (  # noqa: F401 - the live gateway's fixtures, for the recording tests
    fake_upstream,
    gateway_client,
    live_gateway,
)
from observability.models import Call
from observability.services import calls_store
from observability.tests.factories import CallFactory, CallRecordFactory, GatewayCallRecordFactory


@pytest.fixture(autouse=True)
def fresh_process_caches() -> Iterator[None]:
    """Test databases reuse team ids; forget rules and prices cached by earlier tests."""
    guardrail_services.reset_caches()
    price_cache.clear()
    yield
    guardrail_services.reset_caches()
    price_cache.clear()


@pytest.fixture
def make_call(db: None) -> Callable[..., Call]:
    """Store one gateway-style call of `world`'s application; fields override the defaults."""

    def build(world: Any, **fields: Any) -> Call:
        record: dict[str, Any] = GatewayCallRecordFactory.build(world=world, **fields)
        (call,) = calls_store(records=[record])
        return Call.objects.get(id=call.id)

    return build


@pytest.fixture
def call_factory(db: None) -> type[CallFactory]:
    return CallFactory


@pytest.fixture
def call_record_factory() -> type[CallRecordFactory]:
    return CallRecordFactory
