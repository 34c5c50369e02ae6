from __future__ import annotations

import threading
from typing import Any
from unittest import mock

import pytest

from core import generation_cache
from core.generation_cache import (
    EPOCH_KEY,
    GenerationCache,
    generation_token,
    generation_write,
    request_step,
)

KEYS = [f"subject:{index}" for index in range(5)]


def counting_shared_cache() -> Any:
    return mock.patch.object(generation_cache, "shared_cache", wraps=generation_cache.shared_cache)


def reads(shared: mock.MagicMock) -> int:
    return shared.get.call_count + shared.get_many.call_count


def in_thread(function: Any) -> None:
    """Run `function` in another thread, as a concurrent request of the same process would."""
    thread = threading.Thread(target=function)
    thread.start()
    thread.join()


def step_tokens(keys: list[str]) -> list[str]:
    with request_step():
        return [generation_token(key) for key in keys]


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
    with counting_shared_cache() as shared:
        with request_step():
            first = generation_token("k")
            again = generation_token("k")
            reads_of_k = [call.args[0] for call in shared.get.call_args_list].count("k")
            generation_write("k")
            after_write = generation_token("k")
        outside = generation_token("k")

    assert first == again
    assert reads_of_k == 1
    assert after_write != first
    assert outside == after_write


@pytest.mark.parametrize("steps", [1, 3])
def test_outside_a_step_every_read_goes_to_the_shared_cache(steps):
    generation_write("other")
    with counting_shared_cache() as shared:
        for _ in range(steps):
            generation_token("other")

    assert shared.get.call_count == steps


def test_in_steady_state_a_step_costs_one_shared_read_however_many_tokens_it_reads():
    warm = step_tokens(KEYS)

    with counting_shared_cache() as shared:
        steady = step_tokens(KEYS + KEYS)

    assert steady == warm + warm
    assert reads(shared) == 1
    assert [call.args[0] for call in shared.get.call_args_list] == [EPOCH_KEY]
    assert shared.add.call_count == 0


def test_a_write_by_another_process_is_seen_by_the_next_step():
    warm = step_tokens(KEYS)

    generation_write(KEYS[0])  # outside any step, as another process's service does
    after_write = step_tokens(KEYS)
    # another process writing by hand: the subject's token, then the epoch
    generation_cache.shared_cache.set(KEYS[1], "written by hand", timeout=None)
    generation_cache.shared_cache.set(EPOCH_KEY, "a new epoch", timeout=None)
    after_hand_write = step_tokens(KEYS)

    assert after_write[0] != warm[0]
    assert after_write[0] == generation_cache.shared_cache.get(KEYS[0])
    assert after_write[1:] == warm[1:]
    assert after_hand_write == [after_write[0], "written by hand", *warm[2:]]


def test_a_step_that_read_the_epoch_before_a_write_keeps_its_view_and_the_next_step_sees_the_write():
    warm = step_tokens(KEYS)

    with request_step():
        first = generation_token(KEYS[0])
        in_thread(lambda: generation_write(KEYS[0]))
        in_thread(lambda: generation_write(KEYS[1]))
        same_step = [generation_token(key) for key in KEYS]
    next_step = step_tokens(KEYS)

    assert first == warm[0]
    assert same_step == warm
    assert next_step[:2] == [generation_cache.shared_cache.get(KEYS[0]), generation_cache.shared_cache.get(KEYS[1])]
    assert next_step[0] != warm[0]
    assert next_step[1] != warm[1]
    assert next_step[2:] == warm[2:]


def test_when_the_epoch_vanishes_the_next_step_reloads_every_token():
    warm = step_tokens(KEYS)

    generation_cache.shared_cache.clear()  # eviction or a flush: every token is gone
    with counting_shared_cache() as shared:
        reloaded = step_tokens(KEYS)

    assert all(new != old for new, old in zip(reloaded, warm, strict=True))
    assert reloaded == [generation_cache.shared_cache.get(key) for key in KEYS]
    assert [call.args[0] for call in shared.add.call_args_list] == [EPOCH_KEY, *KEYS]


def test_a_token_read_under_a_stale_epoch_is_not_adopted_by_the_process():
    generation_write("late")
    old_token = generation_cache.shared_cache.get("late")
    step_tokens(KEYS)  # the process's table now belongs to the current epoch, without "late"
    real_get = generation_cache.shared_cache.get
    interleaved: list[bool] = []

    def write_and_adopt_the_new_epoch() -> None:
        generation_write("late")
        step_tokens(KEYS)  # another request of this process reads the new epoch

    def get_then_interleave(key: str, *args: Any, **kwargs: Any) -> Any:
        value = real_get(key, *args, **kwargs)
        if key == "late" and not interleaved:
            interleaved.append(True)
            # Between this step's read of the old token and its storing it in the table.
            in_thread(write_and_adopt_the_new_epoch)
        return value

    with counting_shared_cache() as shared:
        shared.get.side_effect = get_then_interleave
        with request_step():
            generation_token(KEYS[0])  # reads the old epoch
            stale_step = generation_token("late")
    next_step = step_tokens(["late"])

    assert interleaved == [True]
    assert stale_step == old_token  # consistent with the epoch that step read
    assert next_step == [generation_cache.shared_cache.get("late")]
    assert next_step != [old_token]
