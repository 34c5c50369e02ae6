"""Guardrail rows for tests, written directly (a test that needs the service's checks and cache
notices calls the service; one that writes a row this way resets the guardrail caches itself)."""

from __future__ import annotations

import hashlib

import factory

from accounts.tests.factories import ApplicationFactory, TeamFactory
from compliance.guardrails.models import ClassificationRule, DataSource, GuardrailPolicy
from core.classification import Clearance


class GuardrailPolicyFactory(factory.django.DjangoModelFactory[GuardrailPolicy]):
    class Meta:
        model = GuardrailPolicy

    application = factory.SubFactory(ApplicationFactory)


class ClassificationRuleFactory(factory.django.DjangoModelFactory[ClassificationRule]):
    """A keyword rule of a team: `ClassificationRuleFactory.create(team=team, keywords=["Nightingale"])`."""

    class Meta:
        model = ClassificationRule

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"rule-{n}")
    kind = "keywords"
    keywords = factory.LazyFunction(lambda: ["codename"])
    level = Clearance.CONFIDENTIAL


class DataSourceFactory(factory.django.DjangoModelFactory[DataSource]):
    class Meta:
        model = DataSource

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"source-{n}")
    text = "t"
    text_sha256 = factory.LazyAttribute(lambda source: hashlib.sha256(source.text.encode()).hexdigest())
