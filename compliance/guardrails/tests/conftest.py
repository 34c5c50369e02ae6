from collections.abc import Iterator

import pytest

from compliance.guardrails import services
from compliance.guardrails.tests.factories import ClassificationRuleFactory, DataSourceFactory, GuardrailPolicyFactory


@pytest.fixture(autouse=True)
def fresh_guardrail_caches() -> Iterator[None]:
    """Test databases reuse ids; forget policies and team states cached by earlier tests."""
    services.reset_caches()
    yield
    services.reset_caches()


@pytest.fixture
def guardrail_policy_factory(db: None) -> type[GuardrailPolicyFactory]:
    return GuardrailPolicyFactory


@pytest.fixture
def classification_rule_factory(db: None) -> type[ClassificationRuleFactory]:
    return ClassificationRuleFactory


@pytest.fixture
def data_source_factory(db: None) -> type[DataSourceFactory]:
    return DataSourceFactory
