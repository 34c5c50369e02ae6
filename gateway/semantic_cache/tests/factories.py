"""Cache rows for tests."""

from __future__ import annotations

import factory

from accounts.tests.factories import ApplicationFactory
from gateway.semantic_cache.models import CacheMode, CacheSettings


class CacheSettingsFactory(factory.django.DjangoModelFactory[CacheSettings]):
    """An application's cache switched on (written directly: bump the generation, as `cache_on`
    does, when a cache already holds entries)."""

    class Meta:
        model = CacheSettings

    application = factory.SubFactory(ApplicationFactory)
    mode = CacheMode.ON
