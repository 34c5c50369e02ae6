"""Guardrails' public surface: the checks the gateway and context assembly run, the per-process
state they read, and the writes that change policies, rules and data sources.

- `checks`: `check_input`, `check_output` (hot path).
- `visibility`: `filter_documents`, `redact_for_viewer` (hot path).
- `state`: `policy_for_application`, `team_state`, the per-process caches and their reset.
- `management`: policy, rule and data-source writes with their audit.
- `message_texts`, `texts_level`: what a team's rules (`team_state(...).rules`) make of stored
  messages (the semantic cache and the call record classify what they store with them).
"""

from __future__ import annotations

from compliance.guardrails.classification import message_texts, texts_level
from compliance.guardrails.services.checks import (
    GuardrailBlocked,
    InputCheck,
    OutputCheck,
    check_input,
    check_output,
)
from compliance.guardrails.services.management import (
    classification_rule_create,
    classification_rule_delete,
    classification_rule_update,
    data_source_create,
    data_source_delete,
    data_source_update,
    guardrail_policy_update,
)
from compliance.guardrails.services.state import (
    TeamState,
    default_policy,
    policy_for_application,
    reset_caches,
    team_state,
)
from compliance.guardrails.services.visibility import filter_documents, redact_for_viewer

__all__ = [
    "GuardrailBlocked",
    "InputCheck",
    "OutputCheck",
    "TeamState",
    "check_input",
    "check_output",
    "classification_rule_create",
    "classification_rule_delete",
    "classification_rule_update",
    "data_source_create",
    "data_source_delete",
    "data_source_update",
    "default_policy",
    "filter_documents",
    "guardrail_policy_update",
    "message_texts",
    "policy_for_application",
    "redact_for_viewer",
    "reset_caches",
    "team_state",
    "texts_level",
]
