"""No budget reservation outlives its call: refused before it, released on any error after it,
reclaimed when the process holding it dies (a real server process, killed with SIGKILL)."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from costs import tasks
from costs.models import BudgetPeriod, BudgetReservation
from gateway.tests.conftest import _free_port, model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import hang, raw, reply
from gateway.tests.processes import ROOT, env_of_test_run, server_process
from gateway.tests.test_governance import MESSAGES, _price_and_budget
from observability.types import CallStatus


def held() -> list[tuple[int, int]]:
    """(spent, reserved) units of every budget period row."""
    return list(BudgetPeriod.objects.order_by("id").values_list("spent_units", "reserved_units"))


def deep_body(levels: int) -> bytes:
    # Written by hand: the JSON libraries refuse to serialise this deep.
    content = "[" * levels + '"hello"' + "]" * levels
    return (
        '{"model": "fake-model", "max_tokens": 5, "messages": [{"role": "user", "content": ' + content + "}]}"
    ).encode()


def test_bodies_nested_500_levels_deep_are_refused_with_400_before_anything_is_reserved(
    gateway_client, fake_upstream, team_a
):
    # given a budget that fits exactly one call
    model_for(provider_for(fake_upstream))
    input_tokens, _ = _price_and_budget(team_a.team, fits=1, max_tokens=5, messages=MESSAGES)
    fake_upstream.default = reply("one two", prompt_tokens=input_tokens, completion_tokens=2)

    # when six requests nest their content 500 levels deep
    answers = [
        httpx.post(
            f"{gateway_client.base_url}/v1/chat/completions",
            content=deep_body(500),
            headers={"authorization": f"Bearer {gateway_client.secret}", "content-type": "application/json"},
            timeout=30,
        )
        for _ in range(6)
    ]

    # then each is a 400 naming the problem, nothing was reserved or sent, and the budget still serves a call
    assert [answer.status_code for answer in answers] == [400] * 6
    error = answers[0].json()["error"]
    assert error["code"] == "nesting_too_deep"
    assert error["param"] == "messages[0].content"
    assert "more than 64 levels deep" in error["message"]
    assert BudgetReservation.objects.count() == 0
    assert all(reserved == 0 for _, reserved in held())
    assert fake_upstream.chat_requests() == []
    gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)


def test_an_error_after_the_reservation_releases_it(gateway_client, fake_upstream, team_a):
    # given a budget that fits exactly one call, and a provider whose answer breaks the gateway
    model_for(provider_for(fake_upstream))
    input_tokens, _ = _price_and_budget(team_a.team, fits=1, max_tokens=5, messages=MESSAGES)
    fake_upstream.enqueue(raw('{"id": "chatcmpl-1", "choices": ["not an object"], "usage": []}'))
    fake_upstream.default = reply("one two", prompt_tokens=input_tokens, completion_tokens=2)

    # when the call fails after its reservation was taken
    with pytest.raises(openai.APIStatusError) as failed:
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)

    # then the reservation is given back: nothing stays held and the next call is served
    assert failed.value.status_code >= 500
    assert BudgetReservation.objects.exclude(state="open").count() == 1
    assert [reserved for _, reserved in held()] == [0]
    answer = gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)
    assert answer.choices[0].message.content == "one two"


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A gateway server in its own process (bench/gateway_server.py: uvicorn, uvloop), on the test database."""
    port = _free_port()
    env = env_of_test_run(GATEWAY_SPOOL_DIR=str(tmp_path / "spool"))
    command = [sys.executable, str(ROOT / "bench" / "gateway_server.py"), "--port", str(port)]
    with server_process(command, env=env, port=port) as process:
        yield process, f"http://127.0.0.1:{port}"


def test_a_server_killed_mid_call_leaves_a_reservation_that_the_reclaim_task_releases(
    gateway_client, fake_upstream, team_a, gateway_process
):
    # given a budget that fits exactly one call, and a provider that hangs
    model_for(provider_for(fake_upstream, read_timeout_seconds=60.0, max_retries=0))
    input_tokens, _ = _price_and_budget(team_a.team, fits=1, max_tokens=5, messages=MESSAGES)
    fake_upstream.enqueue(hang(60))
    fake_upstream.default = reply("one two", prompt_tokens=input_tokens, completion_tokens=2)
    process, base_url = gateway_process
    doomed = openai.OpenAI(base_url=f"{base_url}/v1", api_key=gateway_client.secret, max_retries=0, timeout=60)

    # when the server process is killed while the provider holds its call
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(doomed.chat.completions.create, model="fake-model", messages=MESSAGES, max_tokens=5)
        deadline = time.monotonic() + 30
        while not fake_upstream.chat_requests() and time.monotonic() < deadline and not pending.done():
            time.sleep(0.02)
        assert len(fake_upstream.chat_requests()) == 1, "the call never reached the provider"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        with pytest.raises(openai.APIConnectionError):
            pending.result(timeout=30)

    # then its reservation stays held (open, durable) and refuses the next call
    [reservation] = BudgetReservation.objects.all()
    assert reservation.state == "open"
    assert [reserved for _, reserved in held()] == [reservation.units]
    with pytest.raises(openai.RateLimitError):
        gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)

    # and the reclaim task releases it (no record of that call exists), after which a call is served
    outcome = tasks.budget_reservations_reclaim.apply(kwargs={"older_than_seconds": 0}).get()

    assert outcome == {"settled": 0, "released": 1, "deleted": 0}
    reservation.refresh_from_db()
    assert reservation.state == "released"
    assert held() == [(0, 0)]
    answer = gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)
    assert answer.choices[0].message.content == "one two"
    statuses = [call.status for call in stored_calls(expected=2)]
    assert statuses == [CallStatus.REFUSED, CallStatus.SUCCESS]
