from __future__ import annotations

from unittest import mock

import pytest

from controlplane import generation_cache
from controlplane.generation_cache import GenerationCache, generation_token, generation_write, request_step


def test_a_value_is_reloaded_in_every_process_after_a_bump(db):
    process_one, process_two = GenerationCache("test"), GenerationCache("test")
    loads = []

    def load() -> str:
        loads.append(1)
        return f"value {len(loads)}"

    first = process_one.get_or_load(subject="s", load=load)
    cached = process_two.get_or_load(subject="s", load=load)
    process_one.bump("s")
    reloaded = process_two.get_or_load(subject="s", load=load)

    assert (first, cached, reloaded) == ("value 1", "value 2", "value 3")
    assert process_one.get_or_load(subject="s", load=load) == "value 4"
    assert process_one.get_or_load(subject="s", load=load) == "value 4"  # a hit: no load


def test_within_a_request_step_a_token_is_read_once_and_a_write_is_seen():
    generation_write("k")
    with mock.patch.object(generation_cache, "shared_cache", wraps=generation_cache.shared_cache) as shared:
        with request_step():
            first = generation_token("k")
            again = generation_token("k")
            reads_in_step = shared.get.call_count
            generation_write("k")
            after_write = generation_token("k")
        outside = generation_token("k")

    assert first == again
    assert reads_in_step == 1
    assert after_write != first
    assert outside == after_write


@pytest.mark.parametrize("steps", [1, 3])
def test_outside_a_step_every_read_goes_to_the_shared_cache(steps):
    generation_write("other")
    with mock.patch.object(generation_cache, "shared_cache", wraps=generation_cache.shared_cache) as shared:
        for _ in range(steps):
            generation_token("other")

    assert shared.get.call_count == steps
