from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.caller import Caller
from accounts.tests.factories import UserFactory
from core.errors import PermissionDenied, ValidationFailed
from costs.models import ModelPrice
from costs.pricing import price_cache, prices_changed
from costs.services import call_cost, price_for, price_set, worst_case_cost
from costs.tests.conftest import NOW

pytestmark = pytest.mark.django_db


def test_call_cost_charges_uncached_input_cached_input_and_output_at_the_seeded_prices():
    # gpt-4o: 2.50 input, 1.25 cached input, 10.00 output per million tokens.
    cost = call_cost(team_id=None, model="gpt-4o", input_tokens=1000, output_tokens=500, cached_tokens=200, at=NOW)

    assert cost == Decimal("0.00725000")  # 800 * 2.5 + 200 * 1.25 + 500 * 10 = 7250 per million


def test_cached_tokens_cost_the_input_price_when_the_model_has_no_cached_price():
    cost = call_cost(team_id=None, model="gpt-4-turbo", input_tokens=1000, output_tokens=0, cached_tokens=1000, at=NOW)

    assert cost == Decimal("0.01000000")


def test_the_local_model_is_free_and_an_unknown_model_costs_zero():
    assert call_cost(team_id=None, model="smollm2-135m", input_tokens=10_000, output_tokens=10_000, at=NOW) == 0
    assert call_cost(team_id=None, model="no-such-model", input_tokens=10_000, output_tokens=10_000, at=NOW) == 0
    assert price_for(team_id=None, model="no-such-model", at=NOW) is None


def test_a_dated_snapshot_costs_what_its_alias_costs():
    assert call_cost(
        team_id=None, model="gpt-4o-mini-2024-07-18", input_tokens=1_000_000, output_tokens=0, at=NOW
    ) == Decimal("0.15000000")


def test_worst_case_cost_prices_every_input_token_at_full_price_plus_max_tokens_of_output():
    cost = worst_case_cost(team_id=None, model="gpt-4o-mini", input_tokens=2000, max_tokens=1000, at=NOW)

    assert cost == Decimal("0.00090000")  # 2000 * 0.15 + 1000 * 0.60 per million


def test_a_price_change_applies_from_its_date_and_not_before():
    # given the seeded gpt-4o price, and a cut from tomorrow on
    tomorrow = NOW + timedelta(days=1)
    price_set(
        caller=None,
        model="gpt-4o",
        input_per_million=Decimal("1.00"),
        output_per_million=Decimal("4.00"),
        cached_input_per_million=Decimal("0.50"),
        effective_from=tomorrow,
    )

    # then calls before it keep the old price and calls from it on get the new one
    assert call_cost(
        team_id=None, model="gpt-4o", input_tokens=1_000_000, output_tokens=0, at=tomorrow - timedelta(seconds=1)
    ) == (Decimal("2.50000000"))
    assert call_cost(team_id=None, model="gpt-4o", input_tokens=1_000_000, output_tokens=0, at=tomorrow) == Decimal(
        "1.00000000"
    )
    assert ModelPrice.objects.filter(model="gpt-4o").count() == 2


def test_prices_are_cached_in_process_and_reloaded_when_the_generation_changes():
    # given a warm cache
    assert price_for(team_id=None, model="gpt-4o", at=NOW).input_per_million == Decimal("2.5")  # type: ignore[union-attr]
    # when another process changes the row without bumping the generation, this process does not see it
    ModelPrice.objects.filter(model="gpt-4o").update(input_per_million=Decimal("9"))
    assert price_for(team_id=None, model="gpt-4o", at=NOW).input_per_million == Decimal("2.5")  # type: ignore[union-attr]
    # when the generation is bumped (as price_set does), every process reloads
    prices_changed()
    assert price_for(team_id=None, model="gpt-4o", at=NOW).input_per_million == Decimal("9")  # type: ignore[union-attr]


def test_a_cached_price_lookup_makes_no_database_query(django_assert_num_queries):
    price_for(team_id=None, model="gpt-4o", at=NOW)

    with django_assert_num_queries(0):
        call_cost(team_id=None, model="gpt-4o", input_tokens=10, output_tokens=10, at=NOW)


def test_only_operators_or_trusted_code_set_prices():
    user = UserFactory.create()
    price_cache.clear()

    with pytest.raises(PermissionDenied):
        price_set(
            caller=Caller(user=user),
            model="gpt-4o",
            input_per_million=Decimal(1),
            output_per_million=Decimal(1),
            effective_from=NOW,
        )
    assert ModelPrice.objects.filter(model="gpt-4o").count() == 1


def test_a_negative_price_is_refused_naming_the_field():
    with pytest.raises(ValidationFailed) as refused:
        price_set(
            caller=None,
            model="gpt-4o",
            input_per_million=Decimal(1),
            output_per_million=Decimal(-1),
            effective_from=NOW,
        )

    assert refused.value.param == "output_per_million"
    assert ModelPrice.objects.filter(model="gpt-4o").count() == 1
