from __future__ import annotations

from typing import Any

import pytest

from core.classification import Clearance
from core.testing import assert_hidden, assert_openai_error, assert_refused
from gateway.semantic_cache.models import CacheEntry, CacheMode, CacheSettings
from gateway.semantic_cache.tests.conftest import fill, scope_for


def _url(world: Any) -> str:
    return f"/api/v1/applications/{world.application.id}/cache/"


def test_get_defaults_then_put_settings(team_a: Any, client_for: Any) -> None:
    client = client_for(team_a.members["manager"])
    response = client.get(_url(team_a))
    assert response.status_code == 200
    assert response.json() == {
        "application": team_a.application.id,
        "mode": "off",
        "threshold": 0.8,
        "ttl_seconds": 86400,
        "max_entries": 10000,
        "cache_nonzero_temperature": False,
    }
    response = client.put(_url(team_a), {"mode": "shadow", "threshold": 0.95, "ttl_seconds": 60}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["mode"] == "shadow"
    row = CacheSettings.objects.get(application=team_a.application)
    assert (row.mode, row.threshold, row.ttl_seconds, row.max_entries) == ("shadow", 0.95, 60, 10000)


def test_viewer_reads_but_cannot_write(team_a: Any, client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    client = client_for(team_a.members["viewer"])
    assert client.get(_url(team_a)).json()["mode"] == "on"
    assert_refused(client, "put", _url(team_a), status=403, data={"mode": "off"}, unchanged=[CacheSettings, CacheEntry])


def test_viewer_cannot_purge(team_a: Any, client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    fill(scope_for(team_a.application), "Where is my order?", "a")
    assert_refused(
        client_for(team_a.members["viewer"]), "delete", _url(team_a) + "entries/", status=403, unchanged=[CacheEntry]
    )


def test_other_team_gets_404_and_changes_nothing(team_a: Any, team_b: Any, client_for: Any, cache_on: Any) -> None:
    cache_on(team_b.application)
    fill(scope_for(team_b.application), "Where is my order?", "a")
    client = client_for(team_a.members["admin"])
    unchanged = [CacheSettings, CacheEntry]
    assert_hidden(client, "get", _url(team_b), unchanged=unchanged)
    assert_hidden(client, "put", _url(team_b), data={"mode": "off"}, unchanged=unchanged)
    assert_hidden(client, "get", _url(team_b) + "entries/", unchanged=unchanged)
    assert_hidden(client, "delete", _url(team_b) + "entries/", unchanged=unchanged)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"ttl_seconds": -1}, "ttl_seconds"),
        ({"max_entries": 0}, "max_entries"),
        ({"mode": "always"}, "mode"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_400_naming_the_field(team_a: Any, client_for: Any, body: dict, param: str) -> None:
    client = client_for(team_a.members["admin"])
    before = list(CacheSettings.objects.values())
    response = client.put(_url(team_a), body, format="json")
    assert_openai_error(response, 400, param=param)
    assert list(CacheSettings.objects.values()) == before


def test_entries_list_is_scoped_and_masks_higher_clearance(
    team_a: Any, team_b: Any, client_for: Any, cache_on: Any, django_assert_max_num_queries: Any
) -> None:
    cache_on(team_a.application)
    cache_on(team_b.application)
    for number in range(3):
        fill(scope_for(team_a.application), f"Where is order {number}?", f"answer {number}")
    fill(scope_for(team_a.application, clearance=Clearance.RESTRICTED), "Secret question?", "secret answer")
    fill(scope_for(team_b.application), "Other team question?", "b")
    client = client_for(team_a.members["viewer"])  # confidential clearance
    with django_assert_max_num_queries(8):
        response = client.get(_url(team_a) + "entries/?limit=10")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [row["query_text"] for row in results] == [
        "[hidden: made under restricted clearance]",
        "Where is order 2?",
        "Where is order 1?",
        "Where is order 0?",
    ]
    assert results[0]["answer_text"] == "[hidden: made under restricted clearance]"
    assert results[0]["is_masked"] is True
    assert results[1]["answer_text"] == "answer 2"
    assert results[1]["clearance"] == "internal"


def test_purge_deletes_only_this_application(team_a: Any, team_b: Any, client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    cache_on(team_b.application)
    fill(scope_for(team_a.application), "Where is my order?", "a")
    fill(scope_for(team_b.application), "Where is my order?", "b")
    response = client_for(team_a.members["manager"]).delete(_url(team_a) + "entries/")
    assert response.status_code == 200
    assert response.json() == {"purged": 1}
    assert list(CacheEntry.objects.values_list("application_id", flat=True)) == [team_b.application.id]


def test_application_key_reads_settings_of_its_application(team_a: Any, key_client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application, mode=CacheMode.SHADOW)
    from accounts.types import Role

    response = key_client_for(team_a.application, role=Role.VIEWER).get(_url(team_a))
    assert response.json()["mode"] == "shadow"
