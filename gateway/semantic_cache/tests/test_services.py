from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from core.classification import Clearance
from gateway.semantic_cache import services
from gateway.semantic_cache.models import CacheEntry, CacheMode
from gateway.semantic_cache.services import CacheState, lookup, lookup_in, lookups, state, writes
from gateway.semantic_cache.tests.conftest import ask, completion, fill, scope_for

QUESTION = "How do I reset my password?"
PARAPHRASE = "how can i reset my password"


def test_mode_off_is_a_miss_without_work(team_a: Any, django_assert_num_queries: Any) -> None:
    # Given an application without cache settings (mode off); the settings load once
    scope = scope_for(team_a.application)
    lookup(scope=scope, messages=ask(QUESTION))
    # When it looks up again
    with django_assert_num_queries(0), mock.patch("core.embeddings.embed") as embed:
        result = lookup(scope=scope, messages=ask(QUESTION))
    # Then nothing is queried or embedded
    assert (result.mode, result.hit, result.embedding) == ("off", None, None)
    embed.assert_not_called()


def test_exact_then_semantic_hit(team_a: Any, cache_on: Any) -> None:
    # Given a cached answer
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "Use the 'Forgot password' link.", cost="0.0042")
    # When the same question (other case and spacing) and a paraphrase are asked
    exact = lookup(scope=scope, messages=ask("  how do I   RESET my password? "))
    similar = lookup(scope=scope, messages=ask(PARAPHRASE))
    # Then the first is an exact hit and the second a semantic one, both serving the stored answer
    entry = CacheEntry.objects.get()
    assert exact.hit is not None
    assert similar.hit is not None
    assert (exact.mode, exact.hit.kind, exact.hit.similarity, exact.hit.entry_id) == ("on", "exact", 1.0, str(entry.id))
    assert exact.hit.cost_saved_usd == Decimal("0.0042")
    assert exact.hit.completion == completion("Use the 'Forgot password' link.")
    assert exact.embedding is None
    assert similar.hit.kind == "semantic"
    assert similar.hit.entry_id == str(entry.id)
    assert 0.92 <= similar.hit.similarity < 1.0
    assert similar.embedding is not None
    assert similar.embedding.shape == (384,)
    entry.refresh_from_db()
    assert entry.hit_count == 2


def test_different_question_misses_and_returns_its_embedding(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, "Cancel my order", "Order cancelled.")
    result = lookup(scope=scope, messages=ask("Cancel my subscription"))
    assert result.hit is None
    assert result.embedding is not None
    # The embedding is reused by store (no recomputation needed)
    with mock.patch("core.embeddings.embed") as embed:
        services.store(
            scope=scope,
            messages=ask("Cancel my subscription"),
            completion=completion("Subscription cancelled."),
            cost_usd=Decimal("0.001"),
            embedding=result.embedding,
        )
    embed.assert_not_called()
    assert CacheEntry.objects.count() == 2


def test_higher_clearance_entry_is_never_served_to_lower_clearance(team_a: Any, cache_on: Any) -> None:
    # Given an answer made for a confidential-clearance caller
    cache_on(team_a.application)
    fill(scope_for(team_a.application, clearance=Clearance.CONFIDENTIAL), QUESTION, "Confidential answer.")
    # When an internal-clearance caller asks the same question and a paraphrase
    internal = scope_for(team_a.application, clearance=Clearance.INTERNAL)
    # Then nothing is served to it, while a confidential and a restricted caller get the entry
    assert lookup(scope=internal, messages=ask(QUESTION)).hit is None
    assert lookup(scope=internal, messages=ask(PARAPHRASE)).hit is None
    assert lookup(scope=scope_for(team_a.application, clearance=Clearance.CONFIDENTIAL), messages=ask(QUESTION)).hit
    assert lookup(scope=scope_for(team_a.application, clearance=Clearance.RESTRICTED), messages=ask(PARAPHRASE)).hit


def test_other_application_model_params_prompt_version_and_context_never_match(
    team_a: Any, team_b: Any, cache_on: Any
) -> None:
    cache_on(team_a.application)
    cache_on(team_b.application)
    fill(scope_for(team_a.application), QUESTION, "A's answer.")
    misses = [
        (scope_for(team_b.application), ask(QUESTION)),
        (scope_for(team_a.application, model="gpt-4o"), ask(QUESTION)),
        (scope_for(team_a.application, params={"temperature": 0, "max_tokens": 10}), ask(QUESTION)),
        (scope_for(team_a.application, prompt_version_id=7), ask(QUESTION)),
        (scope_for(team_a.application), ask(QUESTION, system="You are a billing agent.")),
    ]
    for scope, messages in misses:
        assert lookup(scope=scope, messages=messages).hit is None, scope
    # Parameters are normalised: None dropped, order and transport-only keys ignored
    same = scope_for(team_a.application, params={"stream": True, "seed": None, "temperature": 0})
    assert lookup(scope=same, messages=ask(QUESTION)).hit is not None


def test_nonzero_temperature_is_cached_only_when_allowed(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    warm = scope_for(team_a.application, params={"temperature": 0.7})
    unset = scope_for(team_a.application, params={})
    fill(warm, QUESTION, "Answer.")
    fill(unset, QUESTION, "Answer.")  # the provider default temperature is 1.0
    assert CacheEntry.objects.count() == 0
    assert lookup(scope=warm, messages=ask(QUESTION)).hit is None
    cache_on(team_a.application, cache_nonzero_temperature=True)
    fill(warm, QUESTION, "Answer.")
    assert lookup(scope=warm, messages=ask(QUESTION)).hit is not None


def test_expired_entries_never_match_and_are_evicted(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "Old answer.")
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is not None
    # When the entry's time runs out (the in-process index still holds it)
    CacheEntry.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    # Then it matches neither exactly nor semantically
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is None
    assert lookup(scope=scope, messages=ask(PARAPHRASE)).hit is None
    # And the next fill deletes it
    fill(scope, "Where is my parcel?", "Tracking link.")
    assert list(CacheEntry.objects.values_list("query_text", flat=True)) == ["Where is my parcel?"]


def test_ttl_zero_stores_entries_that_never_match(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application, ttl_seconds=0)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "Answer.")
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is None


def test_max_entries_evicts_least_recently_used(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application, max_entries=2)
    scope = scope_for(team_a.application)
    fill(scope, "Where is my parcel?", "a")
    fill(scope, "How do I change my email address?", "b")
    CacheEntry.objects.filter(query_text="Where is my parcel?").update(last_used_at=timezone.now())
    fill(scope, "Can I pay with PayPal?", "c")
    assert sorted(CacheEntry.objects.values_list("query_text", flat=True)) == [
        "Can I pay with PayPal?",
        "Where is my parcel?",
    ]


def test_duplicate_fill_writes_one_entry(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "a")
    fill(scope, " how do i reset my password? ", "b")
    assert CacheEntry.objects.count() == 1


def test_shadow_mode_returns_the_would_be_hit(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application, mode=CacheMode.SHADOW)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "Answer.")
    result = lookup(scope=scope, messages=ask(PARAPHRASE))
    assert result.mode == "shadow"
    assert result.hit is not None
    assert result.hit.kind == "semantic"
    entry = CacheEntry.objects.get()
    assert (entry.hit_count, entry.shadow_hit_count) == (0, 1)


def test_flagged_entry_dies(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "Wrong answer.")
    entry = CacheEntry.objects.get()
    services.entry_flag(entry_id=str(entry.id), reason="thumbs down")
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is None
    assert lookup(scope=scope, messages=ask(PARAPHRASE)).hit is None
    entry.refresh_from_db()
    assert entry.is_flagged
    assert entry.flag_reason == "thumbs down"


def test_flag_by_another_process_is_honoured_by_a_loaded_index(team_a: Any, cache_on: Any) -> None:
    # Given a process whose index holds the entry
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "Answer.")
    other = CacheState(sync_seconds=3600)
    assert lookup_in(state=other, scope=scope, messages=ask(QUESTION)).hit is not None
    # When this process flags it (no token bump: the other index is stale)
    services.entry_flag(entry_id=str(CacheEntry.objects.get().id), reason="reviewer")
    # Then the other process does not serve it either: hits are re-read from the database
    assert lookup_in(state=other, scope=scope, messages=ask(QUESTION)).hit is None


def test_flag_rejects_a_malformed_id(team_a: Any) -> None:
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as error:
        services.entry_flag(entry_id="nope", reason="x")
    assert error.value.param == "entry_id"


def test_multi_process_consistency(team_a: Any, cache_on: Any) -> None:
    # Given two processes sharing the database and the shared cache
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    first, second = CacheState(sync_seconds=0), CacheState(sync_seconds=0)
    assert lookup_in(state=second, scope=scope, messages=ask(QUESTION)).hit is None  # second has loaded the scope
    # When the first process fills the cache
    writer = services.CacheWriter(state=first, inline=True)
    writer.submit(
        writes.StoreJob(
            scope=scope, messages=ask(QUESTION), completion=completion("A"), cost_usd=Decimal(1), embedding=None
        )
    )
    # Then the second finds it (it syncs new rows), exactly and semantically
    assert lookup_in(state=second, scope=scope, messages=ask(QUESTION)).hit is not None
    assert lookup_in(state=second, scope=scope, messages=ask(PARAPHRASE)).hit is not None
    # When the first purges, the second serves nothing, and both reload on the token bump
    services.entries_purge(caller=_caller(team_a), application=team_a.application)
    assert lookup_in(state=second, scope=scope, messages=ask(QUESTION)).hit is None
    assert len(second.registry.loaded(services.request_keys(scope=scope, messages=ask(QUESTION)).scope_hash) or []) == 0


def test_settings_change_reaches_other_processes(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "A")
    other = CacheState()
    assert lookup_in(state=other, scope=scope, messages=ask(QUESTION)).hit is not None
    services.cache_settings_set(caller=_caller(team_a), application=team_a.application, mode=CacheMode.OFF)
    assert lookup_in(state=other, scope=scope, messages=ask(QUESTION)).mode == "off"


def test_backend_failure_degrades_to_a_miss(team_a: Any, cache_on: Any, caplog: Any) -> None:
    cache_on(team_a.application)
    scope = scope_for(team_a.application)
    fill(scope, QUESTION, "A")
    before = lookups.LOOKUPS.labels(result="error")._value.get()
    with mock.patch.object(lookups, "_verified", side_effect=RuntimeError("database down")):
        result = lookup(scope=scope, messages=ask(QUESTION))
    assert (result.mode, result.hit) == ("on", None)
    assert lookups.LOOKUPS.labels(result="error")._value.get() == before + 1
    assert "semantic cache lookup failed" in caplog.text
    with mock.patch.object(state, "generation", side_effect=ConnectionError("redis down")):
        assert lookup(scope=scope, messages=ask(QUESTION)) == services.CacheLookup(mode="off")


def test_store_failure_is_swallowed(team_a: Any, cache_on: Any) -> None:
    cache_on(team_a.application)
    with mock.patch("core.embeddings.embed", side_effect=RuntimeError("model missing")):
        fill(scope_for(team_a.application), QUESTION, "A")
    assert CacheEntry.objects.count() == 0


def test_store_when_mode_off_writes_nothing(team_a: Any) -> None:
    fill(scope_for(team_a.application), QUESTION, "A")
    assert CacheEntry.objects.count() == 0


def test_invalidation_on_label_move(team_a: Any, cache_on: Any, django_capture_on_commit_callbacks: Any) -> None:
    from prompts.services import label_move, prompt_create, prompt_version_create

    caller = _caller(team_a)
    prompt = prompt_create(caller=caller, team=team_a.team, name="support")
    first, _ = prompt_version_create(caller=caller, prompt=prompt, messages=[{"role": "system", "content": "v1"}])
    second, _ = prompt_version_create(caller=caller, prompt=prompt, messages=[{"role": "system", "content": "v2"}])
    cache_on(team_a.application)
    scope = scope_for(team_a.application, prompt_version_id=first.id)
    other_scope = scope_for(team_a.application, prompt_version_id=None)
    fill(scope, QUESTION, "v1 answer")
    fill(other_scope, QUESTION, "unrelated answer")
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is not None
    with django_capture_on_commit_callbacks(execute=True):
        label_move(caller=caller, prompt=prompt, label="production", version=second)
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is None
    assert list(CacheEntry.objects.values_list("prompt_version_id", flat=True)) == [None]


def _caller(world: Any) -> Any:
    from accounts.caller import caller_for_user

    return caller_for_user(world.members["admin"])


@pytest.mark.django_db(transaction=True)
def test_background_writer_thread_writes_fills(make_team: Any, settings: Any) -> None:
    # Given the real writer thread
    settings.SEMANTIC_CACHE_WRITER = "thread"
    world = make_team()
    from gateway.semantic_cache.models import CacheSettings

    CacheSettings.objects.create(application=world.application, mode=CacheMode.ON)
    services.generation_bump(world.application.id)
    scope = scope_for(world.application)
    # When a fill is stored, the call returns before anything is written
    services.store(scope=scope, messages=ask(QUESTION), completion=completion("A"), cost_usd=Decimal("0.5"))
    services.writer().flush()
    # Then the entry is written and served
    assert CacheEntry.objects.filter(application=world.application).count() == 1
    assert lookup(scope=scope, messages=ask(QUESTION)).hit is not None
    connection.close()


def test_settings_summary_gives_each_application_its_mode_in_one_query(
    make_team: Any, cache_on: Any, django_assert_num_queries: Any
) -> None:
    # Given one application with the cache on, one in shadow mode and one without settings
    on, shadow, unset = make_team().application, make_team().application, make_team().application
    cache_on(on)
    cache_on(shadow, mode=CacheMode.SHADOW)
    # When another app asks for their summary
    with django_assert_num_queries(1):
        summary = services.cache_settings_summary([on.id, shadow.id, unset.id])
    # Then each has its mode, and only "on" counts as on
    assert summary == {
        on.id: services.CacheSettingsSummary(mode="on", is_on=True),
        shadow.id: services.CacheSettingsSummary(mode="shadow", is_on=False),
        unset.id: services.CacheSettingsSummary(mode="off", is_on=False),
    }
