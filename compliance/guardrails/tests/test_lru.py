"""The guardrails' bounded cache of what was found in a text before."""

from __future__ import annotations

from compliance.guardrails.lru import LruCache, text_digest


def test_the_least_recently_used_entry_goes_first_when_full():
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used

    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_a_text_with_a_lone_surrogate_has_a_digest_of_its_own():
    assert text_digest("\ud800") != text_digest("\ud801")
    assert len(text_digest("\ud800")) == 16
