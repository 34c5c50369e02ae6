"""What the hot path reads, cached per process: each application's policy, each team's compiled
classification rules and data-source fingerprint index.

Both are `core.generation_cache.GenerationCache`s: a lookup costs one shared-cache read (the
subject's generation token) and no database query on a hit; a write in `management` bumps the
token, so every process reloads on its next lookup. Cached objects are shared between
threads: read them, never modify them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compliance.guardrails import classification, injection, pii
from compliance.guardrails.models import ClassificationRule, DataSource, GuardrailPolicy
from compliance.guardrails.types import DetectorKind
from core.generation_cache import GenerationCache

if TYPE_CHECKING:
    from accounts.models import Application

policies = GenerationCache("guardrails:policy")
team_states = GenerationCache("guardrails:team")


def default_policy(application: Application) -> GuardrailPolicy:
    return GuardrailPolicy(application=application)


def _load_policy(application_id: int) -> GuardrailPolicy:
    policy = GuardrailPolicy.objects.select_related("application").filter(application_id=application_id).first()
    # The checks read only the policy's own fields: the defaults need no application row.
    return policy if policy is not None else GuardrailPolicy(application_id=application_id)


def policy_for_application(application_id: int) -> GuardrailPolicy:
    """The application's policy (defaults if none is stored), cached per process."""
    return policies.get_or_load(subject=application_id, load=lambda: _load_policy(application_id))


@dataclass(frozen=True)
class SourceInfo:
    source_id: int
    name: str
    classification: int
    leak_action: str
    leak_share: float


@dataclass(frozen=True)
class TeamState:
    rules: tuple[classification.CompiledRule, ...]
    sources: dict[int, SourceInfo]
    index: dict[int, set[int]]  # shingle hash -> source ids


def compile_rule(rule: ClassificationRule) -> classification.CompiledRule:
    pattern = None
    if rule.kind == DetectorKind.REGEX:
        pattern = re.compile(rule.pattern)
    elif rule.kind == DetectorKind.KEYWORDS and rule.keywords:
        pattern = classification.keywords_pattern(rule.keywords)
    return classification.CompiledRule(
        rule_id=rule.id,
        name=rule.name,
        kind=rule.kind,
        level=rule.level,
        entities=tuple(rule.entities) if rule.kind == DetectorKind.PII_ENTITY else (),
        pattern=pattern,
    )


def _load_team_state(team_id: int) -> TeamState:
    rules = tuple(compile_rule(rule) for rule in ClassificationRule.objects.filter(team_id=team_id, is_enabled=True))
    sources: dict[int, SourceInfo] = {}
    index: dict[int, set[int]] = {}
    for source_id, name, level, leak_action, leak_share, fingerprints in DataSource.objects.filter(
        team_id=team_id
    ).values_list("id", "name", "classification", "leak_action", "leak_share", "fingerprints"):
        sources[source_id] = SourceInfo(source_id, name, level, leak_action, leak_share)
        for value in fingerprints:
            index.setdefault(int(value), set()).add(source_id)
    return TeamState(rules=rules, sources=sources, index=index)


def team_state(team_id: int) -> TeamState:
    return team_states.get_or_load(subject=team_id, load=lambda: _load_team_state(team_id))


def reset_caches() -> None:
    """Forget every process-cached policy and team state (tests whose database ids are reused)."""
    policies.clear()
    team_states.clear()
    pii.span_cache.clear()
    injection.probability_cache.clear()
