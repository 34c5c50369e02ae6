"""GET|PUT /api/v1/applications/{id}/routing/ with the complexity and cost-cap policies."""

from __future__ import annotations

from typing import Any

import pytest

from core.testing import assert_hidden, assert_openai_error, assert_refused
from costs.models import ModelPrice
from gateway import catalog, routing, services
from gateway.models import LanguageModel, Provider, RoutingPolicy

pytestmark = pytest.mark.django_db

CATALOG = (Provider, LanguageModel, RoutingPolicy, ModelPrice)
COMPLEXITY: dict[str, Any] = {
    "policy": "complexity",
    "tiers": {"small": "gpt-4o-mini", "large": "gpt-4o"},
    "threshold": 0.4,
    "fallbacks": ["gpt-4o"],
}


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    catalog._cache.clear()
    routing._cache.clear()


@pytest.fixture
def models(db, team_a, team_b):
    provider = services.provider_create(caller=None, team=None, name="openai", base_url="https://api.example.com/v1")
    for name, tier in (("gpt-4o-mini", "small"), ("gpt-4.1-mini", "medium"), ("gpt-4o", "large")):
        services.model_create(caller=None, team=None, name=name, provider=provider, provider_model=name, tier=tier)
    b_provider = services.provider_create(caller=None, team=team_b.team, name="b", base_url="https://b.example.com/v1")
    services.model_create(caller=None, team=team_b.team, name="b-model", provider=b_provider, provider_model="x")


@pytest.fixture
def url(team_a):
    return f"/api/v1/applications/{team_a.application.id}/routing/"


def test_a_complexity_policy_is_set_and_read_back(client_for, team_a, models, url):
    manager = client_for(team_a.members["manager"])

    response = manager.put(
        url, {**COMPLEXITY, "tiers": {**COMPLEXITY["tiers"], "medium": "gpt-4.1-mini"}}, format="json"
    )

    assert response.status_code == 200
    body = manager.get(url).json()
    del body["updated_at"]
    assert body == {
        "application": team_a.application.id,
        "policy": "complexity",
        "model": "",
        "tiers": {"small": "gpt-4o-mini", "medium": "gpt-4.1-mini", "large": "gpt-4o"},
        "threshold": 0.4,
        "max_price": None,
        "fallbacks": ["gpt-4o"],
    }
    decision = routing.route(
        team_id=team_a.team.id,
        application_id=team_a.application.id,
        requested_model="gpt-4o",
        messages=[{"role": "user", "content": "hi, what are your opening hours?"}],
    )
    assert (decision.model, decision.tier) == ("gpt-4o-mini", "small")


def test_a_cost_cap_policy_is_set(client_for, team_a, models, url):
    admin = client_for(team_a.members["admin"])

    response = admin.put(
        url,
        {"policy": "cost_cap", "max_price": "1.6", "tiers": {"small": "gpt-4o-mini", "large": "gpt-4o"}},
        format="json",
    )

    assert response.status_code == 200
    assert (response.json()["max_price"], response.json()["tiers"]) == (
        "1.600000",
        {"small": "gpt-4o-mini", "medium": None, "large": "gpt-4o"},
    )


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({**COMPLEXITY, "threshold": 1.01}, "threshold"),
        ({**COMPLEXITY, "threshold": -0.5}, "threshold"),
        ({**COMPLEXITY, "threshold": "high"}, "threshold"),
        ({**COMPLEXITY, "tiers": {"small": "gpt-4o-mini"}}, "tiers.large"),
        ({**COMPLEXITY, "tiers": {"large": "gpt-4o"}}, "tiers.small"),
        ({"policy": "complexity"}, "tiers.small"),
        ({**COMPLEXITY, "tiers": {"small": "b-model", "large": "gpt-4o"}}, "tiers.small"),
        ({**COMPLEXITY, "tiers": {"small": "gpt-4o-mini", "large": "nope"}}, "tiers.large"),
        ({**COMPLEXITY, "tiers": {"small": "gpt-4o-mini", "large": "gpt-4o", "huge": "gpt-4o"}}, "tiers.huge"),
        ({**COMPLEXITY, "tiers": "gpt-4o"}, "tiers"),
        ({"policy": "cost_cap", "tiers": {"small": "gpt-4o-mini"}, "max_price": "-0.01"}, "max_price"),
        ({"policy": "cost_cap", "tiers": {"small": "gpt-4o-mini"}}, "max_price"),
        ({"policy": "cost_cap", "tiers": {"small": "gpt-4o-mini"}, "max_price": "0.1"}, "max_price"),
        ({"policy": "cost_cap", "max_price": "5"}, "tiers"),
        ({"policy": "cost_cap", "max_price": "5", "tiers": {"small": "gpt-4o-mini"}, "model": "b-model"}, "model"),
        ({**COMPLEXITY, "fallbacks": ["b-model"]}, "fallbacks"),
        ({**COMPLEXITY, "policy": "cheapest"}, "policy"),
        ({**COMPLEXITY, "thresholds": [0.2, 0.6]}, "thresholds"),
    ],
)
def test_bad_input_is_refused_naming_the_field_with_nothing_changed(client_for, team_a, models, url, data, param):
    admin = client_for(team_a.members["admin"])
    assert admin.put(url, COMPLEXITY, format="json").status_code == 200

    response = assert_refused(admin, "put", url, status=400, unchanged=CATALOG, data=data)

    assert_openai_error(response, 400, param=param)


def test_viewers_read_but_cannot_change_and_other_teams_see_nothing(client_for, team_a, team_b, models, url):
    viewer = client_for(team_a.members["viewer"])
    outsider = client_for(team_b.members["admin"])

    assert viewer.get(url).json()["policy"] == "fixed"
    assert_refused(viewer, "put", url, status=403, unchanged=CATALOG, data=COMPLEXITY)
    assert_hidden(outsider, "get", url, unchanged=CATALOG)
    assert_hidden(outsider, "put", url, unchanged=CATALOG, data=COMPLEXITY)
