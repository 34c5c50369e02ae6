"""Call records for tests, stored through the same service as the gateway's recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from compliance.guardrails import services as guardrail_services
from core.ids import uuid7
from costs.pricing import price_cache
from gateway.tests.conftest import (  # noqa: F401 - the live gateway's fixtures, for the recording tests
    fake_upstream,
    gateway_client,
    live_gateway,
)
from observability.models import Call
from observability.services import calls_store


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
        record: dict[str, Any] = {
            "id": str(uuid7()),
            "created_at": timezone.now().isoformat(),
            "team": world.team.id,
            "application": world.application.id,
            "request_model": "gpt-4o-mini",
            "response_model": "gpt-4o-mini",
            "provider": "openai",
            "request_messages": [{"role": "user", "content": "Hello there"}],
            "response_text": "Hi! How can I help?",
            "input_tokens": 12,
            "output_tokens": 7,
            "cost_usd": "0.00001200",
            "latency_ms": 321.5,
        }
        record.update(fields)
        (call,) = calls_store(records=[record])
        return Call.objects.get(id=call.id)

    return build
