"""Catalog rows for tests: providers and the models they serve."""

from __future__ import annotations

import factory

from core import crypto
from gateway.models import LanguageModel, Provider


class ProviderFactory(factory.django.DjangoModelFactory[Provider]):
    """A shared provider (team=None) unless a team is given; point `base_url` at a FakeUpstream."""

    class Meta:
        model = Provider

    team = None
    name = factory.Sequence(lambda n: f"provider-{n}")
    base_url = "https://llm.example.com/v1"
    api_key_encrypted = factory.LazyFunction(lambda: crypto.encrypt("upstream-secret"))
    read_timeout_seconds = 5.0
    max_retries = 2
    retry_budget_seconds = 10.0


class LanguageModelFactory(factory.django.DjangoModelFactory[LanguageModel]):
    class Meta:
        model = LanguageModel

    team = None
    name = factory.Sequence(lambda n: f"model-{n}")
    provider = factory.SubFactory(ProviderFactory)
    provider_model = "upstream-model"
