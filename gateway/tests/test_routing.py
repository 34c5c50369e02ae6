"""Model routing: the complexity scorer, its training command and the router (gateway.routing)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.errors import ValidationFailed
from core.testing import snapshot
from gateway import catalog, complexity, routing, services
from gateway.models import RoutingPolicy
from gateway.routing import PolicyConfig, RouteDecision, decide, route

EASY = [
    "hi, what are your opening hours?",
    "How do I reset my password?",
    "What is 15% of 80?",
    "thanks, that solved it!",
]
HARD = [
    "Prove by induction that the sum of the first n cubes equals the square of the sum of the first n "
    "integers, then derive a closed form and explain each step.",
    "Refactor this 2,000-line legacy Java payment module into separate services with clear data ownership, "
    "keep behaviour identical, design the migration plan step by step and write integration tests for each seam.",
    "Our PostgreSQL query joining three 100M-row tables takes a minute; explain the plan, why the index is "
    "not used, and redesign the schema and indexes with the trade-offs.",
]


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    catalog._cache.clear()
    routing._cache.clear()


@pytest.fixture
def tiered(db, team_a):
    """gpt-4o-mini (small), gpt-4.1-mini (medium) and gpt-4o (large) in the shared catalog (seeded prices)."""
    provider = services.provider_create(caller=None, team=None, name="openai", base_url="https://api.example.com/v1")
    for name, tier in (("gpt-4o-mini", "small"), ("gpt-4.1-mini", "medium"), ("gpt-4o", "large")):
        services.model_create(caller=None, team=None, name=name, provider=provider, provider_model=name, tier=tier)
    return team_a


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": text}]


# The scorer ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", EASY)
def test_clear_cut_simple_queries_score_low(text):
    assert complexity.score(text) < 0.2


@pytest.mark.parametrize("text", HARD)
def test_clear_cut_hard_queries_score_high(text):
    assert complexity.score(text) > 0.8


def test_an_empty_query_scores_zero():
    assert complexity.score("   ") == 0.0


def test_only_the_last_user_message_and_a_little_context_are_scored():
    messages = [
        {"role": "system", "content": "S" * 5000},
        {"role": "user", "content": "first question " + "x" * 400},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "and the second?"}, {"type": "image_url"}]},
    ]

    text = complexity.query_text(messages)

    assert text == "x" * complexity.CONTEXT_CHARACTERS + "\nand the second?"
    assert complexity.query_text([{"role": "system", "content": "only a system prompt"}]) == ""


def test_retraining_reproduces_the_shipped_weights(tmp_path):
    output = tmp_path / "weights.json"

    call_command("train_router", "--output", str(output), stdout=open("/dev/null", "w"))  # noqa: SIM115 - discarded

    fresh = json.loads(output.read_text())
    shipped = json.loads(complexity.WEIGHTS_PATH.read_text())
    # Equal but for float rounding: BLAS picks different kernels on different processors (~1e-7).
    assert {key: value for key, value in fresh.items() if key not in ("weights", "bias")} == {
        key: value for key, value in shipped.items() if key not in ("weights", "bias")
    }
    assert fresh["weights"] == pytest.approx(shipped["weights"], rel=0, abs=1e-5)
    assert fresh["bias"] == pytest.approx(shipped["bias"], rel=0, abs=1e-5)


def test_training_uses_only_the_training_split_of_the_shipped_set():
    shipped = json.loads(complexity.WEIGHTS_PATH.read_text())
    rows = complexity.read_labelled(complexity.DEFAULT_DATA_PATH)

    assert shipped["examples"] == sum(row.split == "train" for row in rows)
    assert {row.split for row in rows} == {"train", "test"}
    assert not {row.query for row in rows if row.split == "train"} & {row.query for row in rows if row.split == "test"}


def test_training_refuses_a_bad_csv_naming_the_line(tmp_path):
    data = tmp_path / "reviewed.csv"
    data.write_text("query,tier\nhello,small\nprove it,huge\n")
    output = tmp_path / "weights.json"

    with pytest.raises(CommandError, match=r"reviewed.csv:3: tier must be small or large, not 'huge'"):
        call_command("train_router", "--data", str(data), "--output", str(output))

    assert not output.exists()


def test_retraining_from_reviewed_traffic_is_the_same_command_on_another_csv(tmp_path):
    data = tmp_path / "reviewed.csv"
    data.write_text(
        "query,tier\n" + "".join(f'"{text}",small\n' for text in EASY) + "".join(f'"{text}",large\n' for text in HARD)
    )
    output = tmp_path / "weights.json"

    call_command("train_router", "--data", str(data), "--output", str(output), stdout=open("/dev/null", "w"))  # noqa: SIM115

    trained = json.loads(output.read_text())
    assert (trained["examples"], trained["large_examples"], trained["trained_on"]) == (7, 3, "reviewed.csv (split all)")
    scorer = complexity.load_scorer(Path(output))
    assert list(scorer.scores(EASY) < 0.5) == [True] * 4
    assert list(scorer.scores(HARD) > 0.5) == [True] * 3


# The router -----------------------------------------------------------------------------


def test_no_policy_routes_to_the_requested_model_without_scoring(db, team_a):
    decision = route(
        team_id=team_a.team.id, application_id=team_a.application.id, requested_model="gpt-4o", messages=[]
    )

    assert decision == RouteDecision("gpt-4o", (), "requested model (no routing policy)", "", None, "gpt-4o")


def test_fixed_policy_returns_its_model_without_scoring(tiered):
    services.routing_set(caller=None, application=tiered.application, model="gpt-4o-mini", fallbacks=["gpt-4o"])

    decision = route(
        team_id=tiered.team.id, application_id=tiered.application.id, requested_model="gpt-4o", messages=user(HARD[0])
    )

    assert decision == RouteDecision("gpt-4o-mini", ("gpt-4o",), "policy fixed: gpt-4o-mini", "", None, "gpt-4o")


def test_fixed_policy_without_a_model_serves_the_requested_one():
    decision = decide(PolicyConfig(policy="fixed"), requested_model="gpt-4o", messages=[], score=_never)

    assert decision == RouteDecision("gpt-4o", (), "policy fixed: requested model", "", None, "gpt-4o")


def _never(messages: object) -> float:
    raise AssertionError("a fixed policy must not score the query")


def test_complexity_policy_sends_the_opening_hours_question_to_the_small_tier(tiered):
    services.routing_set(
        caller=None,
        application=tiered.application,
        policy="complexity",
        tiers={"small": "gpt-4o-mini", "large": "gpt-4o"},
        threshold=0.5,
        fallbacks=["gpt-4o"],
    )

    decision = route(
        team_id=tiered.team.id,
        application_id=tiered.application.id,
        requested_model="gpt-4o",
        messages=user("hi, what are your opening hours?"),
    )

    assert (decision.model, decision.fallbacks, decision.tier, decision.baseline_model) == (
        "gpt-4o-mini",
        ("gpt-4o",),
        "small",
        "gpt-4o",
    )
    assert decision.score is not None
    assert decision.score < 0.2
    assert decision.reason == f"complexity {decision.score:.2f} <= 0.5: small tier (gpt-4o-mini)"


@pytest.mark.parametrize("text", HARD)
def test_complexity_policy_sends_proofs_and_refactors_to_the_large_tier(tiered, text):
    services.routing_set(
        caller=None,
        application=tiered.application,
        policy="complexity",
        tiers={"small": "gpt-4o-mini", "large": "gpt-4o"},
        fallbacks=["gpt-4o"],
    )

    decision = route(
        team_id=tiered.team.id, application_id=tiered.application.id, requested_model="x", messages=user(text)
    )

    assert (decision.model, decision.fallbacks, decision.tier, decision.baseline_model) == (
        "gpt-4o",
        (),
        "large",
        "gpt-4o",
    )
    assert decision.reason == f"complexity {decision.score:.2f} > 0.5: large tier (gpt-4o)"


@pytest.mark.parametrize(
    ("value", "model", "tier", "reason"),
    [
        (0.2, "gpt-4o-mini", "small", "complexity 0.20 <= 0.6: small tier (gpt-4o-mini)"),
        (0.3, "gpt-4o-mini", "small", "complexity 0.30 <= 0.6: small tier (gpt-4o-mini)"),
        (0.31, "gpt-4.1-mini", "medium", "complexity 0.3 < 0.31 <= 0.6: medium tier (gpt-4.1-mini)"),
        (0.6, "gpt-4.1-mini", "medium", "complexity 0.3 < 0.60 <= 0.6: medium tier (gpt-4.1-mini)"),
        (0.61, "gpt-4o", "large", "complexity 0.61 > 0.6: large tier (gpt-4o)"),
    ],
)
def test_a_medium_tier_takes_scores_from_half_the_threshold_to_the_threshold(value, model, tier, reason):
    config = PolicyConfig.from_values(
        policy="complexity", tiers={"small": "gpt-4o-mini", "medium": "gpt-4.1-mini", "large": "gpt-4o"}, threshold=0.6
    )

    decision = decide(config, requested_model="anything", messages=[], score=lambda messages: value)

    assert decision == RouteDecision(model, (), reason, tier, value, "gpt-4o")


def test_a_disabled_tier_model_goes_up_to_a_served_tier():
    config = PolicyConfig.from_values(policy="complexity", tiers={"small": "gpt-4o-mini", "large": "gpt-4o"})

    decision = decide(
        config, requested_model="x", messages=[], score=lambda messages: 0.1, is_available=lambda name: name == "gpt-4o"
    )

    assert (decision.model, decision.tier) == ("gpt-4o", "large")
    assert (
        decision.reason
        == "complexity 0.10 <= 0.5: small tier (gpt-4o-mini); gpt-4o-mini unavailable, large tier (gpt-4o)"
    )


@pytest.mark.parametrize(
    ("requested_model", "fallbacks", "expected"),
    [
        pytest.param(
            "gpt-4.1-mini",
            (),  # routing_set's default: no fallbacks
            RouteDecision(
                "gpt-4.1-mini", (), "cost cap $2/M output: gpt-4.1-mini ($1.6) within the cap", "", None, "gpt-4.1-mini"
            ),
            id="keeps the requested model within the cap",
        ),
        pytest.param(
            "gpt-4o",
            ["gpt-4o-mini"],
            RouteDecision(
                "gpt-4.1-mini",
                ("gpt-4o-mini",),
                "cost cap $2/M output: gpt-4o ($10) is above it; medium tier (gpt-4.1-mini, $1.6)",
                "medium",
                None,
                "gpt-4o",
            ),
            id="never routes above the price and picks the best tier within it",
        ),
    ],
)
def test_cost_cap_routes_within_the_cap(tiered, requested_model, fallbacks, expected):
    services.routing_set(
        caller=None,
        application=tiered.application,
        policy="cost_cap",
        max_price=Decimal("2"),
        tiers={"small": "gpt-4o-mini", "medium": "gpt-4.1-mini", "large": "gpt-4o"},
        fallbacks=fallbacks,
    )

    decision = route(
        team_id=tiered.team.id, application_id=tiered.application.id, requested_model=requested_model, messages=[]
    )

    assert decision == expected


def test_a_routing_change_reaches_the_router_through_the_catalog_generation(tiered):
    services.routing_set(caller=None, application=tiered.application, model="gpt-4o")
    assert (
        route(team_id=tiered.team.id, application_id=tiered.application.id, requested_model="x", messages=[]).model
        == "gpt-4o"
    )

    services.routing_set(caller=None, application=tiered.application, model="gpt-4o-mini")

    assert (
        route(team_id=tiered.team.id, application_id=tiered.application.id, requested_model="x", messages=[]).model
        == "gpt-4o-mini"
    )


# Policy validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({"policy": "complexity", "tiers": {"small": "gpt-4o-mini"}}, "tiers.large"),
        ({"policy": "complexity", "tiers": {"large": "gpt-4o"}}, "tiers.small"),
        ({"policy": "complexity", "tiers": {"small": "gpt-4o-mini", "large": "gpt-5-ultra"}}, "tiers.large"),
        ({"policy": "complexity", "tiers": {"small": "gpt-4o-mini", "huge": "gpt-4o"}}, "tiers"),
        ({"policy": "complexity", "tiers": {"small": "gpt-4o-mini", "large": "gpt-4o"}, "threshold": 1.5}, "threshold"),
        (
            {"policy": "complexity", "tiers": {"small": "gpt-4o-mini", "large": "gpt-4o"}, "threshold": -0.1},
            "threshold",
        ),
        (
            {"policy": "complexity", "tiers": {"small": "gpt-4o-mini", "large": "gpt-4o"}, "threshold": float("nan")},
            "threshold",
        ),
        ({"policy": "cost_cap", "tiers": {"small": "gpt-4o-mini"}}, "max_price"),
        ({"policy": "cost_cap", "tiers": {"small": "gpt-4o-mini"}, "max_price": Decimal("-1")}, "max_price"),
        ({"policy": "cost_cap", "tiers": {"small": "gpt-4o-mini"}, "max_price": Decimal("0.5")}, "max_price"),
        ({"policy": "cost_cap", "max_price": Decimal("5")}, "tiers"),
        ({"policy": "fixed", "max_price": Decimal("-1")}, "max_price"),
    ],
)
def test_invalid_policies_are_refused_naming_the_field_and_change_nothing(tiered, values, param):
    services.routing_set(caller=None, application=tiered.application, model="gpt-4o")
    before = snapshot(RoutingPolicy)

    with pytest.raises(ValidationFailed) as refused:
        services.routing_set(caller=None, application=tiered.application, **values)

    assert refused.value.param == param
    assert snapshot(RoutingPolicy) == before


def test_a_valid_complexity_policy_is_saved(tiered):
    saved = services.routing_set(
        caller=None,
        application=tiered.application,
        policy="complexity",
        tiers={"small": " gpt-4o-mini ", "medium": "", "large": "gpt-4o"},
        threshold=0.35,
    )

    saved.refresh_from_db()
    assert (saved.policy, saved.tiers, saved.threshold, saved.max_price) == (
        "complexity",
        {"small": "gpt-4o-mini", "large": "gpt-4o"},
        0.35,
        None,
    )
