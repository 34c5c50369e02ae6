from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from core.testing import assert_hidden, assert_refused
from gateway.semantic_cache.models import CacheEntry, CacheSettings, ShadowReview
from gateway.semantic_cache.tests.conftest import fill, scope_for
from observability.tests.factories import CallFactory


def _page(world: Any) -> str:
    return f"/gateway/cache/{world.application.id}/"


def _shadow_call(world: Any, entry: CacheEntry, **fields: Any) -> Any:
    values = {
        "cache_result": "shadow_hit",
        "cache_entry_id": str(entry.id),
        "cache_similarity": 0.93,
        "request_messages": [{"role": "user", "content": "Where's my order?"}],
        "response_text": "Live answer.",
    }
    values.update(fields)
    return CallFactory.create(world=world, **values)


def test_page_shows_stats_entries_and_shadow_hits(team_a: Any, page_client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    fill(scope_for(team_a.application), "Where is my order?", "Cached answer.")
    entry = CacheEntry.objects.get()
    _shadow_call(team_a, entry)
    CallFactory.create(world=team_a, cache_result="hit", cache_saved_usd=Decimal("0.25"))
    CallFactory.create(world=team_a, cache_result="miss")
    response = page_client_for(team_a.members["viewer"]).get(_page(team_a))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cached answer." in html
    assert "Live answer." in html
    assert "$0.2500" in html
    assert response.context["stats"].hits == 1
    assert response.context["stats"].calls == 3
    assert "Purge every entry" not in html  # viewers cannot purge


def test_index_lists_own_applications(team_a: Any, team_b: Any, page_client_for: Any) -> None:
    response = page_client_for(team_a.members["viewer"]).get("/gateway/cache/")
    assert response.status_code == 200
    assert list(response.context["applications"]) == [team_a.application]


def test_settings_form_saves_and_refuses_bad_input(team_a: Any, page_client_for: Any) -> None:
    client = page_client_for(team_a.members["manager"])
    form = {"mode": "shadow", "threshold": "0.9", "ttl_seconds": "60", "max_entries": "5"}
    response = client.post(_page(team_a), form)
    assert response.status_code == 302
    assert CacheSettings.objects.get(application=team_a.application).mode == "shadow"
    response = client.post(_page(team_a), {**form, "threshold": "2"})
    assert response.status_code == 400
    assert "threshold" in response.content.decode()
    assert CacheSettings.objects.get(application=team_a.application).threshold == 0.9


def test_viewer_cannot_change_settings_or_purge(team_a: Any, page_client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    fill(scope_for(team_a.application), "Where is my order?", "a")
    client = page_client_for(team_a.members["viewer"])
    form = {"mode": "off", "threshold": "0.9", "ttl_seconds": "60", "max_entries": "5"}
    assert_refused(client, "post", _page(team_a), status=403, data=form, unchanged=[CacheSettings, CacheEntry])
    assert_refused(client, "post", _page(team_a) + "purge/", status=403, unchanged=[CacheEntry])


def test_other_team_pages_are_404(team_a: Any, team_b: Any, page_client_for: Any, cache_on: Any) -> None:
    cache_on(team_b.application)
    fill(scope_for(team_b.application), "Where is my order?", "a")
    client = page_client_for(team_a.members["admin"])
    assert_hidden(client, "get", _page(team_b), unchanged=[CacheEntry])
    assert_hidden(client, "post", _page(team_b) + "purge/", unchanged=[CacheEntry])


def test_purge_from_the_page(team_a: Any, page_client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    fill(scope_for(team_a.application), "Where is my order?", "a")
    response = page_client_for(team_a.members["admin"]).post(_page(team_a) + "purge/")
    assert response.status_code == 302
    assert CacheEntry.objects.count() == 0


def test_shadow_review_marks_right_and_wrong_with_precision(team_a: Any, page_client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    fill(scope_for(team_a.application), "Where is my order?", "Cached answer.")
    entry = CacheEntry.objects.get()
    first, second = _shadow_call(team_a, entry), _shadow_call(team_a, entry)
    client = page_client_for(team_a.members["reviewer"])
    client.post(_page(team_a) + "shadow-reviews/", {"call_id": str(first.id), "verdict": "right"})
    client.post(_page(team_a) + "shadow-reviews/", {"call_id": str(second.id), "verdict": "wrong"})
    assert sorted(ShadowReview.objects.values_list("is_correct", flat=True)) == [False, True]
    stats = client.get(_page(team_a)).context["stats"]
    assert (stats.reviewed, stats.reviewed_correct, stats.shadow_precision) == (2, 1, 0.5)
    # A call that is not a shadow hit of this application cannot be reviewed
    response = client.post(_page(team_a) + "shadow-reviews/", {"call_id": str(uuid.uuid4()), "verdict": "right"})
    assert response.status_code == 404
    assert ShadowReview.objects.count() == 2


def test_viewer_cannot_review_shadow_hits(team_a: Any, page_client_for: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    fill(scope_for(team_a.application), "Where is my order?", "Cached answer.")
    call = _shadow_call(team_a, CacheEntry.objects.get())
    assert_refused(
        page_client_for(team_a.members["viewer"]),
        "post",
        _page(team_a) + "shadow-reviews/",
        status=403,
        data={"call_id": str(call.id), "verdict": "right"},
        unchanged=[ShadowReview],
    )
