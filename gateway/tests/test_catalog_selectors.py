"""Unscoped catalog reads for trusted callers (the costs app's price table)."""

from __future__ import annotations

import pytest

from gateway import selectors, services

pytestmark = pytest.mark.django_db


def test_catalog_model_find_prefers_the_named_catalog(team_a):
    provider = services.provider_create(caller=None, team=None, name="p", base_url="https://x.example.com/v1")
    shared = services.model_create(caller=None, team=None, name="m", provider=provider, provider_model="m-1")
    own = services.model_create(caller=None, team=team_a.team, name="m", provider=provider, provider_model="m-2")

    assert selectors.catalog_model_find(team_id=None, name="m") == shared
    assert selectors.catalog_model_find(team_id=team_a.team.id, name="m") == own
    assert selectors.catalog_model_find(team_id=team_a.team.id, name="other") is None
    assert set(selectors.catalog_models()) == {(shared.id, None, "m"), (own.id, team_a.team.id, "m")}
