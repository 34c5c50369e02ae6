"""No call outlives its reason to run: a client that leaves cancels its call, and a server told
to stop (SIGTERM) exits within its grace period even while a provider holds a call."""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest

from costs.models import BudgetReservation
from gateway.tests.conftest import _free_port, model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import hang, reply
from gateway.tests.processes import ROOT, env_of_test_run, server_process
from gateway.tests.test_budget_reservations import held
from gateway.tests.test_governance import MESSAGES, _price_and_budget
from observability.types import CallStatus

GRACE_SECONDS = 2


def _wait_for_provider(upstream, *, count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while len(upstream.chat_requests()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(upstream.chat_requests()) == count, "the call never reached the provider"


def test_a_client_that_disconnects_cancels_its_non_streamed_call(gateway_client, fake_upstream, team_a):
    # given a budget, and a provider that holds the call for a minute
    model_for(provider_for(fake_upstream, read_timeout_seconds=60.0, max_retries=0))
    input_tokens, _ = _price_and_budget(team_a.team, fits=1, max_tokens=5, messages=MESSAGES)
    fake_upstream.enqueue(hang(60))
    fake_upstream.default = reply("one two", prompt_tokens=input_tokens, completion_tokens=2)
    host, port = gateway_client.base_url.removeprefix("http://").split(":")
    body = orjson.dumps({"model": "fake-model", "messages": MESSAGES, "max_tokens": 5})

    # when the client sends a (non-streamed) call and hangs up while the provider works
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {gateway_client.secret}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        _wait_for_provider(fake_upstream)

    # then the call is recorded as cancelled by the client, and its reservation is settled at nothing
    [call] = stored_calls(expected=1)
    assert (call.status, call.http_status) == (CallStatus.CANCELLED, 499)
    assert BudgetReservation.objects.filter(state="open").count() == 0
    assert [reserved for _, reserved in held()] == [0]
    # and the budget serves the next call
    answer = gateway_client.sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=5)
    assert answer.choices[0].message.content == "one two"


@pytest.fixture
def web_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The web server as `make run` and production start it (bin/web), on the test database."""
    port = _free_port()
    env = env_of_test_run(
        GATEWAY_SPOOL_DIR=str(tmp_path / "spool"),
        PORT=str(port),
        BIN=str(Path(sys.executable).parent),
        WEB_GRACEFUL_SHUTDOWN_SECONDS=str(GRACE_SECONDS),
    )
    with server_process([str(ROOT / "bin" / "web")], env=env, port=port) as process:
        yield process, f"http://127.0.0.1:{port}"


def test_sigterm_stops_the_web_server_within_its_grace_period_while_a_call_is_held(
    gateway_client, fake_upstream, web_process
):
    # given a server process (bin/web) whose provider holds a call for a minute
    model_for(provider_for(fake_upstream, read_timeout_seconds=60.0, max_retries=0))
    fake_upstream.enqueue(hang(60))
    process, base_url = web_process
    caller = openai.OpenAI(base_url=f"{base_url}/v1", api_key=gateway_client.secret, max_retries=0, timeout=90)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(caller.chat.completions.create, model="fake-model", messages=MESSAGES, max_tokens=5)
        _wait_for_provider(fake_upstream)

        # when it is told to stop
        process.send_signal(signal.SIGTERM)

        # then it exits after its grace period, not when the provider answers (a generous margin
        # for a loaded machine; without the bound it waited for the call, a minute here)
        try:
            process.wait(timeout=GRACE_SECONDS + 20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server was still running {GRACE_SECONDS + 20} s after SIGTERM")
        assert process.returncode == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        assert "timeout graceful shutdown exceeded" in stderr
        # and the caller's connection was closed rather than left hanging
        with pytest.raises((openai.APIConnectionError, openai.InternalServerError)):
            pending.result(timeout=30)
