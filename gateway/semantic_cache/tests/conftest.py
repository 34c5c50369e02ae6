from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from accounts.models import Application
from core.classification import Clearance
from gateway.semantic_cache import services
from gateway.semantic_cache.models import CacheMode, CacheSettings
from gateway.semantic_cache.services import CacheScope
from gateway.semantic_cache.tests.factories import CacheSettingsFactory


@pytest.fixture(autouse=True)
def inline_writes(settings: Any) -> Iterator[None]:
    """Fills are written in the calling thread, inside the test's transaction (one test runs the
    real writer thread on a transactional database)."""
    settings.SEMANTIC_CACHE_WRITER = "inline"
    services.forget_all()
    yield
    services.forget_all()


@pytest.fixture
def cache_on() -> Callable[..., CacheSettings]:
    def build(application: Application, **fields: Any) -> CacheSettings:
        values = {"mode": CacheMode.ON, **fields}
        row, _ = CacheSettings.objects.update_or_create(application=application, defaults=values)
        services.generation_bump(application.id)
        return row

    return build


def scope_for(application: Application, **overrides: Any) -> CacheScope:
    values: dict[str, Any] = {
        "application_id": application.id,
        "team_id": application.team_id,
        "prompt_version_id": None,
        "model": "gpt-4o-mini",
        "clearance": Clearance.INTERNAL,
        "params": {"temperature": 0},
    }
    values.update(overrides)
    return CacheScope(**values)


def ask(text: str, system: str = "You are a support agent.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def fill(scope: CacheScope, question: str, answer: str, cost: str = "0.0012", **kwargs: Any) -> None:
    services.store(scope=scope, messages=ask(question, **kwargs), completion=completion(answer), cost_usd=Decimal(cost))


@pytest.fixture
def cache_settings_factory(db: None) -> type[CacheSettingsFactory]:
    return CacheSettingsFactory
