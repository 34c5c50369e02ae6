"""Fixtures for evaluations: a dataset of team A, callers, and stored calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from accounts.caller import caller_for_user
from core.ids import uuid7
from evaluations import services
from evaluations.items import parse_item
from evaluations.models import Dataset
from observability.models import Call
from observability.services import calls_store


@pytest.fixture
def engineer(team_a: Any) -> Any:
    return caller_for_user(team_a.members["prompt_engineer"])


@pytest.fixture
def dataset(team_a: Any, engineer: Any) -> Dataset:
    return services.dataset_create(caller=engineer, team_id=team_a.team.id, name="faq")


def new_items(*raws: dict[str, Any]) -> list[services.NewItem]:
    return [services.NewItem(data=parse_item(raw), where=f"items[{index}]") for index, raw in enumerate(raws)]


@pytest.fixture
def make_call(db: None) -> Callable[..., Call]:
    def build(world: Any, **fields: Any) -> Call:
        record: dict[str, Any] = {
            "id": str(uuid7()),
            "created_at": timezone.now().isoformat(),
            "team": world.team.id,
            "application": world.application.id,
            "request_model": "gpt-4o-mini",
            "response_model": "gpt-4o-mini",
            "provider": "openai",
            "request_messages": [{"role": "user", "content": "Where is my order?"}],
            "response_text": "It ships tomorrow.",
            "input_tokens": 12,
            "output_tokens": 7,
            "cost_usd": "0.00001200",
            "latency_ms": 321.5,
        }
        classification = fields.pop("classification", None)
        record.update(fields)
        (call,) = calls_store(records=[record])
        if classification is not None:
            Call.objects.filter(id=call.id).update(classification=classification)
        return Call.objects.get(id=call.id)

    return build
