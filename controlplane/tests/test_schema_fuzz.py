"""Schema fuzzing: every operation of the OpenAPI schema, driven by schemathesis with a
bounded number of generated requests, never answers with a server error, and answers as its
schema describes.

The API is called in-process (the ASGI application, so the gateway's /v1 endpoints are
included) as a team admin's API key, with two teams' data present and the path parameters
pointing at that admin's own objects, so that generated bodies reach the services rather
than stopping at a 404. Run it alone with `pytest -m schema_fuzz`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

from accounts.services import api_key_create
from accounts.types import Role
from conftest import TeamWorld
from core.classification import Clearance
from core.ids import uuid7
from costs.services import budget_create
from observability.services import calls_store
from prompts.services import label_move, prompt_create, prompt_version_create

# Examples generated per operation: 99 operations x 8 = 792 requests took 55 s (plus 13 s of
# setup) on PostgreSQL on two cores shared at a load average of 3, 80 s at a load of 6.
# SCHEMA_FUZZ_EXAMPLES=200 runs a deeper search by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "8"))


def _call(world: TeamWorld, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid7()),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "team": world.team.id,
        "application": world.application.id,
        "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini",
        "provider": "openai",
        "request_messages": [{"role": "user", "content": "Hello there"}],
        "response_text": "Hi! How can I help?",
        "input_tokens": 12,
        "output_tokens": 7,
        "cost_usd": "0.00001200",
        "latency_ms": 321.5,
        **fields,
    }


def _seed(world: TeamWorld) -> dict[str, Any]:
    """Objects of every common kind in the team; returns the path parameters that reach them."""
    prompt = prompt_create(caller=None, team=world.team, name=f"support-{world.team.id}")
    version, _ = prompt_version_create(
        caller=None, prompt=prompt, messages=[{"role": "system", "content": "Answer {{ question }} briefly."}]
    )
    label_move(caller=None, prompt=prompt, label="production", version=version)
    budget, _ = budget_create(
        caller=None, team=world.team, name="monthly", scope="team", period="monthly", amount_usd=Decimal("100")
    )
    (call,) = calls_store(records=[_call(world)])
    return {
        "application_id": world.application.id,
        "team_id": world.team.id,
        "name": prompt.name,
        "label": "production",
        "budget_id": budget.id,
        "call_id": str(call.id),
        "id": str(call.id),
    }


@pytest.fixture
def api_schema(transactional_db: None, make_team: Callable[..., TeamWorld]) -> Any:
    from controlplane.asgi import application

    team_a, team_b = make_team("Team A"), make_team("Team B")
    path_parameters = _seed(team_a)
    _seed(team_b)
    _, secret = api_key_create(
        caller=None, application=team_a.application, name="fuzz", role=Role.ADMIN, clearance=Clearance.RESTRICTED
    )
    config = SchemathesisConfig.from_dict(
        {"parameters": {f"path.{name}": value for name, value in path_parameters.items()}}
    )
    schema = schemathesis.openapi.from_asgi("/api/schema/?format=json", application, config=config)
    return schema, {"Authorization": f"Bearer {secret}"}


def _failures(operation: Any, headers: dict[str, str]) -> list[str]:
    """Each generated request of `operation` answered with a 5xx or with a response its schema
    does not describe, as a curl command and what was wrong."""
    found: list[str] = []

    # Data the schema allows, and data it does not (each must be a 4xx, never a 5xx).
    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the case as generated
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance], headers=headers)
        except FailureGroup as failure:
            found.append(f"{case.as_curl_command(headers=headers)}\n  -> {response.status_code}: {failure}"[:2000])

    run()
    return found


@pytest.mark.schema_fuzz
@pytest.mark.timeout(600)
def test_no_operation_answers_with_a_server_error_or_off_its_schema(api_schema: Any) -> None:
    schema, headers = api_schema
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # a schema error raises here: the schema itself is broken
        operations += 1
        failures.extend(_failures(operation, headers))

    assert operations > 80  # the whole API was exercised, not a fragment of it
    assert failures == [], "\n".join(failures)
