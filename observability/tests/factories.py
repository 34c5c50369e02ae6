"""Call records for tests: a stored `Call` row, and the record the gateway's recorder stores."""

from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone

from core.ids import uuid7
from observability.models import Call


class CallFactory(factory.django.DjangoModelFactory[Call]):
    """A call of `world`'s application (a conftest TeamWorld): `CallFactory.create(world=team_a, cache_result="hit")`.

    Only the time and the owner are set; a test names the fields it is about. `.build()` makes
    an unsaved row, for tests that store calls as the recorder does (bulk insert and rollups)."""

    class Meta:
        model = Call

    class Params:
        world: Any = None

    created_at = factory.LazyFunction(timezone.now)
    team = factory.LazyAttribute(lambda call: call.world.team)
    application = factory.LazyAttribute(lambda call: call.world.application)


class CallRecordFactory(factory.DictFactory):
    """The record of one call as the recorder receives it (observability.services.calls_store),
    with only what every record needs: `CallRecordFactory.build(world=team_a, request_model="m")`."""

    class Params:
        world: Any = None

    id = factory.LazyFunction(lambda: str(uuid7()))
    created_at = factory.LazyFunction(lambda: timezone.now().isoformat())
    team = factory.LazyAttribute(lambda record: record.world.team.id)
    application = factory.LazyAttribute(lambda record: record.world.application.id)


class GatewayCallRecordFactory(CallRecordFactory):
    """A complete gateway call's record: a short chat on gpt-4o-mini, its tokens, cost and latency."""

    request_model = "gpt-4o-mini"
    response_model = "gpt-4o-mini"
    provider = "openai"
    request_messages = factory.LazyFunction(lambda: [{"role": "user", "content": "Hello there"}])
    response_text = "Hi! How can I help?"
    input_tokens = 12
    output_tokens = 7
    cost_usd = "0.00001200"
    latency_ms = 321.5
