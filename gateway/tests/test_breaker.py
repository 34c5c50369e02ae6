"""The circuit breaker's state as the gateway reads it: per process, behind a generation token."""

from __future__ import annotations

from typing import Any
from unittest import mock

from django.core.cache import cache

from core import generation_cache
from core.generation_cache import request_step
from gateway import breaker


def states_in_a_step(provider_ids: list[int]) -> dict[int, float | None]:
    with request_step():
        return breaker.states(provider_ids)


def counting(module: Any, name: str) -> Any:
    return mock.patch.object(module, name, wraps=getattr(module, name))


def test_in_a_warm_request_step_states_cost_no_shared_read_beyond_the_epoch():
    states_in_a_step([1, 2])

    with counting(generation_cache, "shared_cache") as tokens, counting(breaker, "cache") as states_cache:
        states = states_in_a_step([1, 2])

    assert states == {1: None, 2: None}
    assert [call.args[0] for call in tokens.get.call_args_list] == [generation_cache.EPOCH_KEY]
    assert states_cache.get_many.call_count == 0
    assert states_cache.get.call_count == 0


def test_a_breaker_opened_by_another_process_is_seen_by_the_next_step_and_so_is_its_closing(settings):
    settings.GATEWAY_BREAKER_THRESHOLD = 1
    before = states_in_a_step([1, 2])

    opened = breaker.record_failure(1)  # as a failing call in another process records it
    after_opening = states_in_a_step([1, 2])
    open_until = cache.get("gateway:breaker:1:open_until")
    breaker.record_success(1)  # its probe succeeded
    after_closing = states_in_a_step([1, 2])

    assert before == {1: None, 2: None}
    assert opened is True
    assert open_until is not None
    assert after_opening == {1: open_until, 2: None}
    assert after_closing == {1: None, 2: None}


def test_a_past_open_until_is_read_again_so_a_breaker_whose_key_expired_is_closed():
    past = 1.0  # the cooldown is long over: half-open
    cache.set("gateway:breaker:1:open_until", past, timeout=None)
    generation_cache.generation_write("gateway:breaker:generation")
    half_open = states_in_a_step([1])

    cache.delete("gateway:breaker:1:open_until")  # expired on its own: no generation write
    expired = states_in_a_step([1])

    assert half_open == {1: past}
    assert expired == {1: None}
