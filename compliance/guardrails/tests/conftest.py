from collections.abc import Iterator

import pytest

from compliance.guardrails import services


@pytest.fixture(autouse=True)
def fresh_guardrail_caches() -> Iterator[None]:
    """Test databases reuse ids; forget policies and team states cached by earlier tests."""
    services.reset_caches()
    yield
    services.reset_caches()
