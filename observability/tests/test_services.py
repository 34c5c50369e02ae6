"""calls_ingest: application resolution, permissions, idempotency, costing, and the race on client ids."""

from __future__ import annotations

import datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.db import IntegrityError
from django.utils import timezone

from accounts.caller import caller_for_api_key, caller_for_user
from accounts.models import ApiKey
from accounts.services import api_key_create
from accounts.types import Role
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from costs.services import price_set
from observability import services
from observability.models import Call

pytestmark = pytest.mark.django_db


def validated_record(client_id: str, **fields):
    """A record as the API's serializer hands it over."""
    return {
        "id": client_id,
        "model": "small-model",
        "messages": [{"role": "user", "content": "Hi"}],
        "response": "Hello",
        "usage": {"prompt_tokens": 2_000_000, "completion_tokens": 1_000_000, "cached_tokens": 1_000_000},
        **fields,
    }


def application_caller(world):
    api_key, _ = api_key_create(caller=None, application=world.application, name="app", role=Role.APPLICATION)
    return caller_for_api_key(ApiKey.objects.select_related("application").get(id=api_key.id))


def test_ingest_prices_calls_without_a_cost_at_their_time(team_a):
    price_set(
        caller=None,
        model="small-model",
        input_per_million=Decimal("1"),
        output_per_million=Decimal("2"),
        cached_input_per_million=Decimal("0.5"),
        effective_from=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    )
    price_set(
        caller=None,
        model="small-model",
        input_per_million=Decimal("10"),
        output_per_million=Decimal("20"),
        cached_input_per_million=Decimal("5"),
        effective_from=datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC),
    )
    caller = application_caller(team_a)

    result = services.calls_ingest(
        caller=caller,
        records=[
            validated_record("early", created_at=datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)),
            validated_record("late", created_at=datetime.datetime(2024, 7, 1, tzinfo=datetime.UTC)),
            validated_record("given", cost_usd=Decimal("0.1")),
        ],
    )

    costs = {call.client_call_id: Call.objects.get(id=call.id).cost_usd for call in result.created}
    # 1M uncached input x 1 + 1M cached x 0.5 + 1M output x 2 = 3.5 USD; ten times that after June.
    assert costs == {"early": Decimal("3.5"), "late": Decimal("35"), "given": Decimal("0.1")}
    assert result.existing == {}


def test_ingest_skips_client_ids_the_application_already_sent(team_a, team_b):
    caller = application_caller(team_a)
    first = services.calls_ingest(caller=caller, records=[validated_record("a")])

    again = services.calls_ingest(caller=caller, records=[validated_record("a"), validated_record("b")])
    elsewhere = services.calls_ingest(caller=application_caller(team_b), records=[validated_record("a")])

    assert again.existing == {"a": first.created[0].id}
    assert [call.client_call_id for call in again.created] == ["b"]
    assert [call.client_call_id for call in elsewhere.created] == ["a"]  # ids are unique per application
    assert Call.objects.filter(application=team_a.application).count() == 2


def test_ingest_by_a_user_needs_the_application_and_invoke_rights(team_a, team_b):
    engineer = caller_for_user(team_a.members["prompt_engineer"])
    viewer = caller_for_user(team_a.members["viewer"])

    with pytest.raises(ValidationFailed) as missing:
        services.calls_ingest(caller=engineer, records=[validated_record("a")])
    with pytest.raises(PermissionDenied):
        services.calls_ingest(caller=viewer, records=[validated_record("a")], application_id=team_a.application.id)
    with pytest.raises(NotFound):
        services.calls_ingest(caller=engineer, records=[validated_record("a")], application_id=team_b.application.id)

    assert missing.value.param == "application"
    assert Call.objects.count() == 0


def test_ingest_refuses_a_batch_over_the_limit(team_a):
    with pytest.raises(ValidationFailed) as refused:
        services.calls_ingest(
            caller=application_caller(team_a),
            records=[validated_record(f"c{index}") for index in range(services.MAX_INGEST_BATCH + 1)],
        )

    assert (refused.value.param, Call.objects.count()) == ("calls", 0)


def test_ingest_retries_when_a_concurrent_batch_stored_the_same_ids_first(team_a):
    caller = application_caller(team_a)
    real_store = services.calls_store
    raced: list[bool] = []

    def store_after_a_racing_request(*, records):
        if not raced:
            raced.append(True)
            real_store(records=[{**records[0], "id": "0190d6e4-0000-7000-8000-000000000001"}])
            raise IntegrityError("duplicate client id")
        return real_store(records=records)

    with mock.patch.object(services, "calls_store", side_effect=store_after_a_racing_request):
        result = services.calls_ingest(caller=caller, records=[validated_record("a"), validated_record("b")])

    assert list(result.existing) == ["a"]
    assert [call.client_call_id for call in result.created] == ["b"]
    assert Call.objects.filter(application=team_a.application).count() == 2


def test_ingest_gives_up_with_a_conflict_when_the_race_persists(team_a):
    with (
        mock.patch.object(services, "calls_store", side_effect=IntegrityError("duplicate")),
        pytest.raises(Conflict),
    ):
        services.calls_ingest(caller=application_caller(team_a), records=[validated_record("a")])

    assert Call.objects.count() == 0


def test_ingested_ids_follow_created_at(team_a):
    caller = application_caller(team_a)
    now = timezone.now()

    result = services.calls_ingest(
        caller=caller,
        records=[
            validated_record("later", created_at=now - datetime.timedelta(minutes=1)),
            validated_record("earlier", created_at=now - datetime.timedelta(days=3)),
        ],
    )

    by_id = sorted(result.created, key=lambda call: call.id)
    assert [call.client_call_id for call in by_id] == ["earlier", "later"]
