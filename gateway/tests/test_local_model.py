"""The real local model, end to end: `manage.py serve_local_model` in its own process, called
through the official `openai` SDK like any remote provider (non-streaming and streaming)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway import local_model

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Name one colour."}]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings_test"}
    process = subprocess.Popen(  # noqa: S603 - our own command with fixed arguments
        [sys.executable, "manage.py", "serve_local_model", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the local model server did not come up: {output[-2000:]}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the local model server did not stop on SIGINT")
    assert process.returncode == 0


@pytest.fixture
def client(local_server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=local_server, api_key="not-needed", timeout=60, max_retries=0) as sdk:
        yield sdk


@pytest.mark.local_model
def test_the_local_model_lists_itself(client):
    assert [model.id for model in client.models.list()] == [local_model.MODEL_NAME]


@pytest.mark.local_model
def test_the_local_model_answers_with_usage(client):
    completion = client.chat.completions.create(
        model=local_model.MODEL_NAME, messages=MESSAGES, max_tokens=8, temperature=0
    )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 8
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


@pytest.mark.local_model
def test_the_local_model_streams_with_a_usage_chunk(client):
    stream = client.chat.completions.create(
        model=local_model.MODEL_NAME,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert 0 < final.usage.completion_tokens <= 8


@pytest.mark.local_model
def test_bad_input_gets_an_openai_shaped_error(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=local_model.MODEL_NAME, messages="not a list", max_tokens=4)

    assert raised.value.status_code == 400
    assert "messages" in raised.value.message


@pytest.mark.local_model
def test_the_local_model_answers_through_the_gateway_and_the_call_is_recorded(local_server, gateway_client):
    from django.core.management import call_command

    from gateway.catalog import catalog_changed
    from gateway.tests.conftest import stored_calls

    call_command("seed_catalog", "--local-url", local_server, stdout=open(os.devnull, "w"))  # noqa: SIM115 - discarded
    catalog_changed()

    completion = gateway_client.sdk.chat.completions.create(
        model=local_model.MODEL_NAME, messages=MESSAGES, max_tokens=8, temperature=0
    )
    streamed = list(
        gateway_client.sdk.chat.completions.create(
            model=local_model.MODEL_NAME, messages=MESSAGES, max_tokens=8, temperature=0, stream=True
        )
    )

    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    calls = stored_calls(expected=2)
    assert [(call.provider, call.response_model, call.status) for call in calls] == [
        ("local", local_model.MODEL_NAME, "success"),
        ("local", local_model.MODEL_NAME, "success"),
    ]
    assert all(call.output_tokens > 0 and call.cost_usd == 0 for call in calls)
