"""Cache settings beyond what the columns hold (or a product limit) are a 400 naming the field
and change nothing; they were a 500 (`integer out of range`) from both the API and the page."""

from __future__ import annotations

from typing import Any

import pytest

from core.testing import assert_refused, snapshot
from gateway.semantic_cache.models import MAX_MAX_ENTRIES, MAX_TTL_SECONDS, CacheSettings

pytestmark = pytest.mark.django_db


def _url(world: Any) -> str:
    return f"/api/v1/applications/{world.application.id}/cache/"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_entries", 137438953472),
        ("max_entries", MAX_MAX_ENTRIES + 1),
        ("ttl_seconds", 1099511627776),
        ("ttl_seconds", MAX_TTL_SECONDS + 1),
        ("ttl_seconds", 2**31),
    ],
)
def test_api_refuses_settings_out_of_range_naming_the_field(team_a, client_for, field, value):
    client = client_for(team_a.members["admin"])
    client.put(_url(team_a), {"mode": "shadow"}, format="json")  # a row exists, to prove it is unchanged

    response = assert_refused(client, "put", _url(team_a), status=400, data={field: value}, unchanged=[CacheSettings])

    error = response.json()["error"]
    assert error["param"] == field
    assert f"{MAX_MAX_ENTRIES if field == 'max_entries' else MAX_TTL_SECONDS}" in error["message"]


def test_api_accepts_the_largest_settings(team_a, client_for):
    response = client_for(team_a.members["admin"]).put(
        _url(team_a), {"max_entries": MAX_MAX_ENTRIES, "ttl_seconds": MAX_TTL_SECONDS}, format="json"
    )

    assert response.status_code == 200, response.content
    row = CacheSettings.objects.get(application=team_a.application)
    assert (row.max_entries, row.ttl_seconds) == (MAX_MAX_ENTRIES, MAX_TTL_SECONDS)


@pytest.mark.parametrize(("field", "value"), [("max_entries", "137438953472"), ("ttl_seconds", "1099511627776")])
def test_page_refuses_settings_out_of_range_naming_the_field(team_a, page_client_for, field, value):
    client = page_client_for(team_a.members["admin"])
    form = {"mode": "shadow", "threshold": "0.9", "ttl_seconds": "60", "max_entries": "5"}
    assert client.post(f"/gateway/cache/{team_a.application.id}/", form).status_code == 302
    before = snapshot(CacheSettings)

    response = client.post(f"/gateway/cache/{team_a.application.id}/", {**form, field: value})

    assert response.status_code == 400
    assert f"{field}: Ensure this value is less than or equal to" in response.content.decode()
    assert snapshot(CacheSettings) == before


@pytest.mark.parametrize("value", ["2", "1.01", "-0.1"])
def test_page_refuses_a_threshold_outside_0_and_1_naming_the_field(team_a, page_client_for, value):
    client = page_client_for(team_a.members["admin"])
    form = {"mode": "shadow", "threshold": "0.9", "ttl_seconds": "60", "max_entries": "5"}
    assert client.post(f"/gateway/cache/{team_a.application.id}/", form).status_code == 302
    before = snapshot(CacheSettings)

    response = client.post(f"/gateway/cache/{team_a.application.id}/", {**form, "threshold": value})

    assert response.status_code == 400
    assert "threshold: must be a cosine similarity between 0 and 1, such as 0.92." in response.content.decode()
    assert snapshot(CacheSettings) == before
