"""The Redis cache backend keeps one redis-py client per connection pool."""

from __future__ import annotations

from functools import partial

import pytest
import redis

from core.cache import RedisCache
from core.tests.threads import run_at_once

SERVER = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_cache():
    backend = RedisCache(SERVER, {"KEY_PREFIX": "test-cache-backend"})
    try:
        backend.set("probe", 1)
    except redis.ConnectionError:
        pytest.skip(f"no Redis server at {SERVER}")
    yield backend
    backend.clear()


def test_operations_share_one_client_and_behave_like_djangos_backend(redis_cache):
    client = redis_cache._cache.get_client()
    results: list[object] = []

    def work(index: int) -> None:
        redis_cache.set(f"key-{index}", {"index": index})
        results.append(redis_cache.get(f"key-{index}"))

    run_at_once([partial(work, index) for index in range(8)])

    assert redis_cache._cache.get_client(write=True) is client
    assert sorted(result["index"] for result in results) == list(range(8))  # type: ignore[index]
    assert redis_cache.add("key-0", "other") is False
    assert redis_cache.get_many(["key-1", "missing"]) == {"key-1": {"index": 1}}


def test_the_settings_use_it_for_a_redis_cache_url(settings):
    if "redis" not in settings.CACHES["default"].get("LOCATION", ""):
        pytest.skip("the cache under test is not Redis")
    assert settings.CACHES["default"]["BACKEND"] == "core.cache.RedisCache"
