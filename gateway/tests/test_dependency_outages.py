"""The gateway keeps serving when a dependency stalls or fails (issue 11, item 6): a failing
provider, a slow shared cache, a shared cache (Redis) that goes away and comes back."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import redis
import uvicorn
from django.core.cache.backends.locmem import LocMemCache

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from accounts.types import Role
from core import generation_cache
from core.classification import Clearance
from core.generation_cache import SharedCacheUnavailable
from gateway import keys
from gateway.catalog import catalog_changed
from gateway.tests.conftest import GatewayClient, model_for, provider_for, stored_calls
from gateway.tests.fake_upstream import FakeUpstream, fail, reply
from observability.types import CallStatus

MESSAGES: Any = [{"role": "user", "content": "Hello there"}]  # the SDK types each message; any dict goes on the wire


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _json_error(response: httpx.Response) -> dict[str, Any]:
    """The OpenAI error object of a response, checking that it is one."""
    assert response.headers["content-type"] == "application/json", (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


# A provider's 500 ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_providers_500_reaches_the_client_as_a_502_in_the_openai_error_shape(
    gateway_client: GatewayClient, fake_upstream: FakeUpstream, stream: bool
) -> None:
    model_for(provider_for(fake_upstream, max_retries=0))
    fake_upstream.enqueue(fail(500, message="the model server crashed"))

    response = httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}"},
        json={"model": "fake-model", "messages": MESSAGES, "stream": stream},
        timeout=30,
    )

    assert response.status_code == 502
    assert _json_error(response) == {
        "message": "Provider 'fake' failed with HTTP 500: the model server crashed",
        "type": "api_error",
        "param": None,
        "code": "upstream_error",
    }
    [call] = stored_calls(expected=1)
    assert (call.status, call.http_status) == (CallStatus.ERROR, 502)
    assert [attempt["status"] for attempt in call.attempts] == [500]


# Nothing slow on the event loop ----------------------------------------------------------


class SlowCache(LocMemCache):
    """A shared cache whose every round trip takes `delay_seconds` (a Redis under load).

    While it is slow it also notes each operation made on an event loop's thread: a shared-cache
    round trip on the loop is then found whatever the machine's load does to the loop's timing."""

    delay_seconds = 0.0
    on_the_loop: list[str] = []

    def _wait(self) -> None:
        if SlowCache.delay_seconds:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # a worker thread: where the gateway's shared-cache round trips belong
            else:
                SlowCache.on_the_loop.append("".join(traceback.format_stack(limit=6)[:-1]))
            time.sleep(SlowCache.delay_seconds)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().get(*args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().get_many(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().add(*args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().set(*args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().incr(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().delete(*args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().delete_many(*args, **kwargs)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


SLOW_CALLBACK_SECONDS = 0.1


@pytest.fixture
def debug_loop_gateway(transactional_db: None, settings: Any) -> Iterator[tuple[str, _Collect]]:
    """The project's ASGI app served on an event loop in asyncio debug mode, which logs every
    callback (a step of a task) that holds the loop longer than SLOW_CALLBACK_SECONDS."""
    from controlplane.asgi import application

    settings.CACHES = {"default": {"BACKEND": f"{__name__}.SlowCache", "LOCATION": "slow-shared-cache"}}
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    warnings = _Collect()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(warnings)

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK_SECONDS
        try:
            loop.run_until_complete(server.serve())
        finally:
            loop.close()

    thread = threading.Thread(target=serve, name="debug-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the gateway did not start"
    catalog_changed()
    keys.forget_all()
    try:
        yield f"http://127.0.0.1:{port}", warnings
    finally:
        SlowCache.delay_seconds = 0.0
        SlowCache.on_the_loop.clear()
        server.should_exit = True
        thread.join(timeout=10)
        asyncio_logger.removeHandler(warnings)


def test_a_failing_provider_and_a_slow_shared_cache_never_hold_the_event_loop(
    debug_loop_gateway: tuple[str, _Collect],
    fake_upstream: FakeUpstream,
    second_upstream: FakeUpstream,
    settings: Any,
    team_a: Any,
) -> None:
    base_url, warnings = debug_loop_gateway
    settings.GATEWAY_BREAKER_THRESHOLD = 2
    # Long enough for the next call (slow: every shared-cache read waits) to find it open.
    settings.GATEWAY_BREAKER_COOLDOWN_SECONDS = 4.0
    primary = provider_for(fake_upstream, max_retries=0)
    model_for(provider_for(second_upstream, name="backup"), name="backup-model", provider_model="backup-model")
    model_for(primary, fallbacks=["backup-model"])
    _, secret = api_key_create(
        caller=None, application=team_a.application, name="debug", role=Role.APPLICATION, clearance=Clearance.INTERNAL
    )
    sdk = openai.OpenAI(base_url=f"{base_url}/v1", api_key=secret, max_retries=0, timeout=60)
    sdk.chat.completions.create(model="fake-model", messages=MESSAGES)  # warm: first-use imports and connections
    warnings.messages.clear()
    SlowCache.delay_seconds = 1.2 * SLOW_CALLBACK_SECONDS
    fake_upstream.enqueue(fail(500), fail(500), fail(500))
    second_upstream.enqueue(*[reply("from the backup")] * 4)

    # Two failures open the breaker (the backup answers); the next call skips the provider.
    answers = [sdk.chat.completions.create(model="fake-model", messages=MESSAGES) for _ in range(3)]
    time.sleep(4.2)  # wait out the cooldown: the next call probes (half-open), and fails again
    answers.append(sdk.chat.completions.create(model="fake-model", messages=MESSAGES))

    assert [answer.choices[0].message.content for answer in answers] == ["from the backup"] * 4
    calls = stored_calls(expected=5)
    failure = "Fake upstream failure (500)."
    assert [
        [attempt["error"] for attempt in call.attempts if attempt["model"] == "fake-model"] for call in calls[1:]
    ] == [
        [failure],
        [failure],
        ["circuit open"],
        [failure],
    ]
    assert SlowCache.on_the_loop == []
    assert [message for message in warnings.messages if "took" in message] == []


# The shared cache goes away and comes back -----------------------------------------------


class OwnRedis:
    """A redis-server of this test's own on a free port (never the shared ones)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary and arguments
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis_cache(settings: Any) -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }
    settings.SHARED_CACHE_RETRY_SECONDS = 0.2
    settings.SHARED_CACHE_FALLBACK_TTL_SECONDS = 0.2
    try:
        yield server
    finally:
        server.stop()
        generation_cache._health = generation_cache._Health()  # no outage outlives its test


def _readyz(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/readyz", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _availability_metric(base_url: str) -> str:
    lines = httpx.get(f"{base_url}/metrics", timeout=30).text.splitlines()
    return next(line for line in lines if line.startswith("controlplane_shared_cache_available"))


def test_without_the_shared_cache_the_gateway_serves_from_the_database_reports_degraded_and_recovers(
    own_redis_cache: OwnRedis, gateway_client: GatewayClient, fake_upstream: FakeUpstream
) -> None:
    model_for(provider_for(fake_upstream))
    sdk, base_url = gateway_client.sdk, gateway_client.base_url
    assert sdk.chat.completions.create(model="fake-model", messages=MESSAGES).choices[0].message.content
    before = _readyz(base_url)

    own_redis_cache.stop()
    during = [sdk.chat.completions.create(model="fake-model", messages=MESSAGES) for _ in range(5)]
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in sdk.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        if chunk.choices
    )
    models = [model.id for model in sdk.models.list()]
    unknown_key = httpx.post(
        f"{base_url}/v1/chat/completions",
        headers={"Authorization": "Bearer cp-not-a-key"},
        json={"model": "fake-model", "messages": MESSAGES},
        timeout=30,
    )
    rest_api = httpx.get(  # the REST API's rate limit counts in the shared cache: it fails open
        f"{base_url}/api/v1/me/", headers={"Authorization": f"Bearer {gateway_client.secret}"}, timeout=30
    )
    degraded = _readyz(base_url)
    degraded_metric = _availability_metric(base_url)
    api_key = ApiKey.objects.get(application=gateway_client.application)
    with pytest.raises(SharedCacheUnavailable):  # other processes could not be told: refused
        api_key_revoke(caller=None, api_key=api_key)
    api_key.refresh_from_db()
    revoked_during_outage = api_key.revoked_at

    own_redis_cache.start()  # empty, as a restarted Redis without persistence
    deadline = time.monotonic() + 30
    while _readyz(base_url)["status"] != "ready":  # the cache's circuit tries again shortly
        assert time.monotonic() < deadline, "the shared cache was not seen again"
        time.sleep(0.05)
    after = sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    recovered_metric = _availability_metric(base_url)
    api_key_revoke(caller=None, api_key=api_key)
    with pytest.raises(openai.AuthenticationError):  # the revocation reaches the gateway again at once
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert (before["status"], before["checks"]["shared_cache"]) == ("ready", "ok")
    assert [completion.choices[0].message.content for completion in during] == ["Hello from the fake upstream."] * 5
    assert streamed == "Hello from the fake upstream."
    assert models == ["fake-model"]
    assert unknown_key.status_code == 401
    assert rest_api.status_code == 200, rest_api.text
    assert _json_error(unknown_key)["code"] == "invalid_api_key"
    assert degraded["status"] == "degraded"
    assert degraded["checks"]["shared_cache"].startswith("unavailable")
    assert degraded["checks"]["database"] == "ok"
    assert degraded_metric == "controlplane_shared_cache_available 0.0"
    assert revoked_during_outage is None
    assert after.choices[0].message.content == "Hello from the fake upstream."
    assert recovered_metric == "controlplane_shared_cache_available 1.0"
    assert len(stored_calls(expected=8)) == 8


def test_an_unexpected_error_on_v1_is_answered_in_the_openai_error_shape(
    gateway_client: GatewayClient, fake_upstream: FakeUpstream, settings: Any
) -> None:
    model_for(provider_for(fake_upstream))
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.BrokenCache", "LOCATION": "broken"}}

    response = httpx.post(
        f"{gateway_client.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway_client.secret}"},
        json={"model": "fake-model", "messages": MESSAGES},
        timeout=30,
    )

    assert response.status_code == 500
    assert _json_error(response) == {
        "message": "Internal server error; it has been logged.",
        "type": "api_error",
        "param": None,
        "code": "server_error",
    }


class BrokenCache(LocMemCache):
    """A cache backend with a bug (not an outage): its reads raise."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the cache backend")
