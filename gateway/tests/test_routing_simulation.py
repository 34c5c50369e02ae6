"""The routing simulation: replaying recorded calls through an unsaved policy, priced exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.caller import caller_for_user
from core.errors import NotFound, ValidationFailed
from core.testing import snapshot
from gateway import catalog, routing, selectors, services
from gateway.models import RoutingPolicy
from gateway.routing import PolicyConfig
from observability.models import Call
from observability.tests.factories import CallFactory
from observability.types import CacheResult, CallStatus

pytestmark = pytest.mark.django_db

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EASY = "hi, what are your opening hours?"
HARD = (
    "Prove by induction that the sum of the first n cubes equals the square of the sum of the first n integers, "
    "then derive a closed form and explain each step."
)
COMPLEXITY = PolicyConfig.from_values(policy="complexity", tiers={"small": "gpt-4o-mini", "large": "gpt-4o"})


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    catalog._cache.clear()
    routing._cache.clear()


def call(world, *, minutes: int, text: str, **fields) -> Call:
    values = {
        "created_at": AT + timedelta(minutes=minutes),
        "request_model": "gpt-4o",
        "response_model": "gpt-4o",
        "request_messages": [{"role": "user", "content": text}],
        **fields,
    }
    return CallFactory.create(world=world, **values)


@pytest.fixture
def calls(team_a, team_b):
    """Two replayable gpt-4o calls, and calls the simulation must skip."""
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million (seeded prices).
    call(team_a, minutes=1, text=EASY, input_tokens=1000, output_tokens=500, cost_usd=Decimal("0.0075"))
    call(
        team_a,
        minutes=2,
        text=HARD,
        input_tokens=2000,
        cached_tokens=1000,
        output_tokens=1000,
        cost_usd=Decimal("0.01375"),
    )
    call(team_a, minutes=3, text=EASY, input_tokens=900, output_tokens=0, cache_result=CacheResult.HIT)
    call(team_a, minutes=4, text=EASY, input_tokens=900, status=CallStatus.ERROR, cost_usd=Decimal("0.1"))
    call(team_b, minutes=5, text=EASY, input_tokens=10**6, output_tokens=10**6, cost_usd=Decimal("12.5"))


def test_complexity_policy_projection_prices_actual_tokens_at_the_projected_model(team_a, calls):
    caller = caller_for_user(team_a.members["viewer"])

    result = selectors.routing_simulate(caller=caller, application_id=team_a.application.id, config=COMPLEXITY)

    # Newest first: the hard call stays on gpt-4o; the easy one moves to gpt-4o-mini
    # ($0.15 input, $0.60 output): 1000 * 0.15 / 1e6 + 500 * 0.60 / 1e6 = 0.00045.
    assert [(row.projected_model, row.tier, row.projected_cost, row.actual_cost) for row in result.calls] == [
        ("gpt-4o", "large", Decimal("0.01375000"), Decimal("0.01375")),
        ("gpt-4o-mini", "small", Decimal("0.00045000"), Decimal("0.0075")),
    ]
    assert (result.actual_cost, result.projected_cost, result.changed_calls) == (
        Decimal("0.02125"),
        Decimal("0.01420000"),
        1,
    )
    assert result.saved == Decimal("0.00705")
    assert result.saved_percent == pytest.approx(33.176470588)


def test_fixed_policy_projection_counts_cached_tokens_at_the_cached_price(team_a, calls):
    caller = caller_for_user(team_a.members["viewer"])
    config = PolicyConfig.from_values(policy="fixed", model="gpt-4o-mini")

    result = selectors.routing_simulate(caller=caller, application_id=team_a.application.id, config=config)

    # 1000 uncached * 0.15 + 1000 cached * 0.075 + 1000 output * 0.60 = 825 micro-dollars.
    assert [row.projected_cost for row in result.calls] == [Decimal("0.00082500"), Decimal("0.00045000")]
    assert (result.projected_cost, result.changed_calls) == (Decimal("0.00127500"), 2)


def test_the_limit_takes_the_newest_calls_and_scores_come_from_the_given_scorer(team_a, calls):
    caller = caller_for_user(team_a.members["admin"])

    result = selectors.routing_simulate(
        caller=caller, application_id=team_a.application.id, config=COMPLEXITY, limit=1, score=lambda texts: [0.1]
    )

    assert [(row.projected_model, row.score, row.projected_cost) for row in result.calls] == [
        ("gpt-4o-mini", 0.1, Decimal("0.00082500"))  # the hard call, scored 0.1 here
    ]


def test_the_simulation_refuses_a_bad_limit_and_other_teams(team_a, team_b, calls):
    with pytest.raises(ValidationFailed) as refused:
        selectors.routing_simulate(
            caller=caller_for_user(team_a.members["viewer"]),
            application_id=team_a.application.id,
            config=COMPLEXITY,
            limit=0,
        )
    assert refused.value.param == "limit"
    with pytest.raises(NotFound):
        selectors.routing_simulate(
            caller=caller_for_user(team_b.members["admin"]), application_id=team_a.application.id, config=COMPLEXITY
        )


# The page ----------------------------------------------------------------------------------


@pytest.fixture
def tiers(db):
    provider = services.provider_create(caller=None, team=None, name="openai", base_url="https://api.example.com/v1")
    for name, tier in (("gpt-4o-mini", "small"), ("gpt-4o", "large")):
        services.model_create(caller=None, team=None, name=name, provider=provider, provider_model=name, tier=tier)


def page_url(world) -> str:
    return f"/gateway/routing/{world.application.id}/simulate/"


FORM = {"policy": "complexity", "tier_small": "gpt-4o-mini", "tier_large": "gpt-4o", "threshold": "0.5", "limit": "50"}


def test_the_page_shows_projected_against_actual_and_saves_nothing(page_client_for, team_a, calls, tiers):
    viewer = page_client_for(team_a.members["viewer"])
    before = snapshot(RoutingPolicy, Call)

    response = viewer.get(page_url(team_a), FORM)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<td id="changed-calls">1</td>' in html
    assert '<td id="actual-cost">$0.02125000</td>' in html
    assert '<td id="projected-cost">$0.01420000</td>' in html
    assert '<td id="saved">$0.00705000 (33.2% of actual)</td>' in html
    assert snapshot(RoutingPolicy, Call) == before


def test_the_page_without_a_policy_shows_the_form(page_client_for, team_a, tiers):
    response = page_client_for(team_a.members["viewer"]).get(page_url(team_a))

    assert response.status_code == 200
    assert b'name="tier_small"' in response.content
    assert b'id="changed-calls"' not in response.content


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({**FORM, "threshold": "2"}, b"threshold must be from 0 to 1"),
        ({**FORM, "tier_large": ""}, b"tiers.large is required"),
        ({**FORM, "tier_small": "nope"}, b"tiers.small: no model named"),
        ({**FORM, "limit": "5000"}, b"limit:"),
        ({**FORM, "policy": "cost_cap", "max_price": "-1"}, b"max_price"),
    ],
)
def test_the_page_answers_bad_input_with_400_saying_what_to_fix(page_client_for, team_a, calls, tiers, form, message):
    response = page_client_for(team_a.members["viewer"]).get(page_url(team_a), form)

    assert response.status_code == 400
    assert message in response.content


def test_another_teams_simulation_is_404(page_client_for, team_a, team_b, calls, tiers):
    outsider = page_client_for(team_b.members["admin"])

    assert outsider.get(page_url(team_a), FORM).status_code == 404
    assert outsider.get(page_url(team_a)).status_code == 404
