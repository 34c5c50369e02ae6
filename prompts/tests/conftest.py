from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import Team
from prompts import services
from prompts.cache import resolution_cache
from prompts.models import Experiment, ExperimentExposure, LabelHistory, Prompt, PromptLabel, PromptVersion

BASE = "/api/v1/prompts/"
# Every table a prompt write touches: a refused request must leave them all unchanged.
PROMPT_TABLES = (Prompt, PromptVersion, PromptLabel, LabelHistory, Experiment, ExperimentExposure)
SUPPORT_MESSAGES = [
    {"role": "system", "content": "You are a support agent for {{ product }}."},
    {"role": "user", "content": "Customer {{ customer_name }} asks: {{ question }}"},
]


@pytest.fixture(autouse=True)
def _fresh_resolution_cache() -> None:
    # The per-process cache outlives a test's database transaction; start each test empty.
    resolution_cache.clear()


@pytest.fixture
def make_prompt(db: None) -> Callable[..., Prompt]:
    """A prompt with `versions` versions (messages differ by a suffix) created as trusted provisioning."""

    def build(team: Team, name: str = "support", versions: int = 1, **fields: Any) -> Prompt:
        prompt = services.prompt_create(caller=None, team=team, name=name, **fields)
        for number in range(1, versions + 1):
            services.prompt_version_create(
                caller=None,
                prompt=prompt,
                messages=[
                    SUPPORT_MESSAGES[0],
                    {**SUPPORT_MESSAGES[1], "content": SUPPORT_MESSAGES[1]["content"] + " v" * number},
                ],
                params={"model": "gpt-4o-mini", "temperature": 0.1 * number},
                commit_message=f"version {number}",
            )
        return prompt

    return build


def version(prompt: Prompt, number: int) -> PromptVersion:
    return PromptVersion.objects.get(prompt=prompt, number=number)
