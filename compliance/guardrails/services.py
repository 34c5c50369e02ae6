"""Guardrails: policy writes, and the checks the gateway, context assembly and call views run.

Hot-path functions (`policy_for_application`, `check_input`, `check_output`,
`filter_documents`, `redact_for_viewer`) are synchronous, read only process-cached state
(one Django-cache read per lookup to detect changes made by other processes) and never write.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from accounts import roles
from accounts.caller import Caller
from accounts.models import Application, Team
from compliance.guardrails import classification, injection, pii
from compliance.guardrails.caching import GenerationCache
from compliance.guardrails.models import (
    PII_ENTITIES,
    ClassificationRule,
    DataSource,
    DetectorKind,
    GuardrailPolicy,
    InjectionAction,
    LeakAction,
    PiiAction,
)
from core.classification import Clearance
from core.errors import ApplicationError, PermissionDenied, ValidationFailed

# Documents without a classification are internal, as in prompts.context.
DEFAULT_DOCUMENT_CLASSIFICATION = "internal"
ABOVE_CLEARANCE = "above_clearance"
# A response that reproduces this many 8-word shingles of a source leaks it whatever its share.
LEAK_ABSOLUTE_SHINGLES = 25
MAX_PATTERN_LENGTH = 500
MAX_KEYWORDS = 500
# Roles whose messages the injection detector reads: the application's own system prompt and
# the model's earlier answers are not attacker-controlled.
INJECTION_SCANNED_ROLES = frozenset({"user", "tool", "function"})
# Under a PII policy of "allow" (findings recorded, the request unchanged), the input check
# analyses at most this many characters, the latest messages first: spaCy reads some 15,000
# characters per CPU-second on the 2-core reference machine (bench/request_limits_bench.py),
# and a request may hold 1,000,000. "redact" and "block" analyse everything.
PII_ALLOW_MAX_CHARS = 2_000


class GuardrailBlocked(ApplicationError):
    """A call refused by a guardrail: 400 in OpenAI's error shape."""

    status_code = 400
    default_code = "guardrail_blocked"


# ---------------------------------------------------------------------------------------------
# Policies


_policies: GenerationCache[GuardrailPolicy] = GenerationCache("policy")


def default_policy(application: Application) -> GuardrailPolicy:
    return GuardrailPolicy(application=application)


def _load_policy(application_id: int) -> GuardrailPolicy:
    policy = GuardrailPolicy.objects.select_related("application").filter(application_id=application_id).first()
    if policy is not None:
        return policy
    return default_policy(Application.objects.get(pk=application_id))


def policy_for_application(application_id: int) -> GuardrailPolicy:
    """The application's policy (defaults if none is stored), cached per process.

    The returned object is shared between threads: read it, never modify it.
    """
    return _policies.get(application_id, lambda: _load_policy(application_id))


def _invalidate_after_commit(cache: GenerationCache[Any], object_id: int) -> None:
    # Now for this process, and again at commit so that no process caches the old row under
    # the new generation while the transaction is still open.
    cache.invalidate(object_id)
    transaction.on_commit(lambda: cache.invalidate(object_id))


def validate_entities(entities: Iterable[str], *, param: str) -> list[str]:
    result = []
    for entity in entities:
        if entity not in PII_ENTITIES:
            raise ValidationFailed(
                f"'{entity}' is not a PII entity type this detector knows; use some of: {', '.join(PII_ENTITIES)}.",
                param=param,
            )
        if entity not in result:
            result.append(entity)
    return result


_NEVER_AUDITED = frozenset({"text", "fingerprints", "text_sha256"})  # a data source's content


def _audit_state(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else {name: value for name, value in values.items() if name not in _NEVER_AUDITED}


def _audit(
    *,
    caller: Caller,
    action: str,
    target_type: str,
    target_id: int,
    team_id: int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Guardrail, classification and data-source changes go on the audit trail with before and
    after of what changed (a data source's text only as "changed", never the text)."""
    from compliance.services import audit_change

    audit_change(
        actor=caller,
        action=action,
        target_type=target_type,
        target_id=target_id,
        team_id=team_id,
        before=_audit_state(before),
        after=_audit_state(after),
    )


_POLICY_FIELDS = (
    "pii_input",
    "pii_output",
    "pii_entities",
    "restore_pii_in_response",
    "injection",
    "injection_threshold",
)
_RULE_FIELDS = ("name", "kind", "level", "entities", "pattern", "keywords", "is_enabled")
_SOURCE_FIELDS = ("name", "description", "classification", "leak_action", "leak_share")


def _state(instance: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}


def guardrail_policy_update(
    *,
    caller: Caller,
    application: Application,
    pii_input: str | None = None,
    pii_output: str | None = None,
    pii_entities: Sequence[str] | None = None,
    restore_pii_in_response: bool | None = None,
    injection_action: str | None = None,
    injection_threshold: float | None = None,
) -> GuardrailPolicy:
    caller.require_permission(
        roles.CHANGE_GUARDRAIL_POLICY,
        team_id=application.team_id,
        action="change this application's guardrails",
    )
    if pii_input is not None and pii_input not in PiiAction.values:
        raise ValidationFailed(f"pii.input must be one of {', '.join(PiiAction.values)}.", param="pii.input")
    if pii_output is not None and pii_output not in PiiAction.values:
        raise ValidationFailed(f"pii.output must be one of {', '.join(PiiAction.values)}.", param="pii.output")
    if injection_action is not None and injection_action not in InjectionAction.values:
        raise ValidationFailed(f"injection must be one of {', '.join(InjectionAction.values)}.", param="injection")
    if injection_threshold is not None and not 0.0 <= injection_threshold <= 1.0:
        raise ValidationFailed("injection_threshold must be between 0 and 1.", param="injection_threshold")
    entities = validate_entities(pii_entities, param="pii.entities") if pii_entities is not None else None
    with transaction.atomic():
        policy, _ = GuardrailPolicy.objects.select_for_update().get_or_create(application=application)
        before = _state(policy, _POLICY_FIELDS)
        changes = {
            "pii_input": pii_input,
            "pii_output": pii_output,
            "pii_entities": entities,
            "restore_pii_in_response": restore_pii_in_response,
            "injection": injection_action,
            "injection_threshold": injection_threshold,
        }
        for name, value in changes.items():
            if value is not None:
                setattr(policy, name, value)
        policy.full_clean()
        policy.save()
        _invalidate_after_commit(_policies, application.id)
        _audit(
            caller=caller,
            action="guardrails.policy_update",
            target_type="guardrail_policy",
            target_id=application.id,
            team_id=application.team_id,
            before=before,
            after=_state(policy, _POLICY_FIELDS),
        )
    return policy


# ---------------------------------------------------------------------------------------------
# Per-team classification state: compiled rules and the data-source fingerprint index


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


_team_states: GenerationCache[TeamState] = GenerationCache("team")


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
    return _team_states.get(team_id, lambda: _load_team_state(team_id))


def reset_caches() -> None:
    """Forget every process-cached policy and team state (tests whose database ids are reused)."""
    _policies.clear()
    _team_states.clear()
    pii.span_cache.clear()
    injection.probability_cache.clear()


# ---------------------------------------------------------------------------------------------
# Checks on the gateway path


@dataclass
class InputCheck:
    messages: list[dict[str, Any]]
    findings: list[dict[str, Any]] = field(default_factory=list)
    blocked: ApplicationError | None = None
    restore_map: dict[str, str] = field(default_factory=dict)


@dataclass
class OutputCheck:
    text: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    blocked: ApplicationError | None = None


def _text_parts(content: Any) -> list[tuple[Any, str]]:
    """(key, text) for each text part of a message's content: a string, or OpenAI content parts."""
    if isinstance(content, str):
        return [(None, content)]
    if isinstance(content, list):
        return [
            (index, part["text"])
            for index, part in enumerate(content)
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
    return []


def _replace_parts(content: Any, replacements: Mapping[Any, str]) -> Any:
    if isinstance(content, str):
        return replacements.get(None, content)
    result = []
    for index, part in enumerate(content):
        result.append({**part, "text": replacements[index]} if index in replacements else part)
    return result


def _pii_findings(spans: Sequence[pii.Span], *, action: str, location: str) -> list[dict[str, Any]]:
    by_entity: dict[str, dict[str, Any]] = {}
    for span in spans:
        finding = by_entity.setdefault(
            span.entity,
            {"type": "pii", "entity": span.entity, "score": 0.0, "action": action, "count": 0, "location": location},
        )
        finding["score"] = round(max(finding["score"], span.score), 4)
        finding["count"] += 1
    return list(by_entity.values())


def _pii_blocked(entities: Iterable[str], *, where: str, param: str | None) -> GuardrailBlocked:
    names = ", ".join(sorted(set(entities)))
    return GuardrailBlocked(
        f"The {where} contains personal data ({names}) that this application's guardrail policy blocks. "
        "Remove it, or ask an admin to set the PII policy to redact.",
        code="pii_detected",
        param=param,
    )


def document_text(document: Mapping[str, Any]) -> str:
    text = document.get("text", document.get("content", ""))
    return text if isinstance(text, str) else ""


def _pii_scanned_texts(texts: Sequence[str], *, policy: GuardrailPolicy) -> list[str]:
    """What of each text the input PII check analyses: all of it when the policy redacts or
    blocks (the request depends on it); when it allows, findings are only recorded, and at
    most PII_ALLOW_MAX_CHARS characters are analysed: the latest texts that fit whole (the
    latest one, when it alone is longer, up to the last space within the limit; never a cut
    word, which the analyzer may mistake for a name)."""
    if policy.pii_input != PiiAction.ALLOW or sum(len(text) for text in texts) <= PII_ALLOW_MAX_CHARS:
        return list(texts)
    scanned = [""] * len(texts)
    budget = PII_ALLOW_MAX_CHARS
    for position in range(len(texts) - 1, -1, -1):
        text = texts[position]
        if len(text) <= budget:
            scanned[position] = text
            budget -= len(text)
            continue
        if budget == PII_ALLOW_MAX_CHARS:
            scanned[position] = text[: max(0, text.rfind(" ", 0, budget + 1))]
        break
    return scanned


def check_input(
    *,
    policy: GuardrailPolicy,
    messages: list[dict[str, Any]],
    documents: Sequence[Mapping[str, Any]] = (),
) -> InputCheck:
    """PII (allow/redact/block) over every message, then prompt injection over user, tool and
    function messages and over the supplied documents.

    Documents that the context assembly already rendered into messages are scanned as part of
    their message when its role is scanned; pass them as `documents` too so that an injection
    hidden in a document is reported against that document.
    """
    findings: list[dict[str, Any]] = []
    redactor = pii.Redactor()
    result_messages: list[dict[str, Any]] = []
    blocked_entities: list[str] = []
    entities = list(policy.pii_entities or [])
    parts = [
        (index, key, text)
        for index, message in enumerate(messages)
        for key, text in _text_parts(message.get("content"))
    ]
    scanned = _pii_scanned_texts([text for _, _, text in parts], policy=policy)
    spans_of = dict(
        zip(
            ((index, key) for index, key, _ in parts),
            pii.detect_many(scanned, entities, cache_scope=policy.application_id),
            strict=True,
        )
    )
    for index, message in enumerate(messages):
        content = message.get("content")
        replacements: dict[Any, str] = {}
        for key, text in _text_parts(content):
            spans = spans_of[(index, key)]
            if not spans:
                continue
            location = f"messages[{index}]" if key is None else f"messages[{index}].content[{key}]"
            findings.extend(_pii_findings(spans, action=policy.pii_input, location=location))
            if policy.pii_input == PiiAction.BLOCK:
                blocked_entities.extend(span.entity for span in spans)
            elif policy.pii_input == PiiAction.REDACT:
                replacements[key] = redactor.redact(text, spans)
        result_messages.append(
            {**message, "content": _replace_parts(content, replacements)} if replacements else message
        )
    if blocked_entities:
        return InputCheck(
            messages=list(messages),
            findings=findings,
            blocked=_pii_blocked(blocked_entities, where="request", param="messages"),
        )

    blocked: ApplicationError | None = None
    if policy.injection != InjectionAction.OFF:
        locations: list[str] = []
        texts: list[str] = []
        for index, message in enumerate(messages):
            if message.get("role") not in INJECTION_SCANNED_ROLES:
                continue
            for key, text in _text_parts(message.get("content")):
                locations.append(f"messages[{index}]" if key is None else f"messages[{index}].content[{key}]")
                texts.append(text)
        for index, document in enumerate(documents):
            locations.append(f"documents[{index}]" + (f" ({document['id']})" if document.get("id") else ""))
            texts.append(document_text(document))
        scores = injection.score_texts(texts, cache_scope=policy.application_id)
        for location, finding in zip(locations, scores, strict=True):
            if finding.score < policy.injection_threshold:
                continue
            findings.append(
                {
                    "type": "injection",
                    "score": round(finding.score, 4),
                    "action": policy.injection,
                    "rule": finding.rule,
                    "classifier_score": round(finding.classifier_score, 4),
                    "location": location,
                }
            )
            if policy.injection == InjectionAction.BLOCK and blocked is None:
                blocked = GuardrailBlocked(
                    f"The request looks like a prompt injection ({finding.rule or 'classifier'}, score "
                    f"{finding.score:.2f}, in {location}); this application's guardrail policy blocks it.",
                    code="prompt_injection",
                    param="messages" if location.startswith("messages") else "documents",
                )
    return InputCheck(messages=result_messages, findings=findings, blocked=blocked, restore_map=redactor.restore_map)


def _level_name(level: int) -> str:
    return str(Clearance(level).label) if level in Clearance.values else str(level)


def check_output(
    *,
    policy: GuardrailPolicy,
    text: str,
    caller_clearance: int,
    team_id: int,
    restore_map: dict[str, str],
) -> OutputCheck:
    """PII per the policy's output action, placeholder restoration, then the classification leak check."""
    findings: list[dict[str, Any]] = []
    entities = list(policy.pii_entities or [])
    # Placeholders from the input are not personal data; blank them (same length) before scanning.
    spans = pii.detect(pii.mask_placeholders(text), entities)
    if spans:
        findings.extend(_pii_findings(spans, action=policy.pii_output, location="response"))
        if policy.pii_output == PiiAction.BLOCK:
            return OutputCheck(
                text="",
                findings=findings,
                blocked=_pii_blocked([span.entity for span in spans], where="response", param=None),
            )
        if policy.pii_output == PiiAction.REDACT:
            # Numbered after the input's placeholders, and never restored: the model produced them.
            output_redactor = pii.Redactor()
            for placeholder in restore_map:
                match = pii.PLACEHOLDER_PATTERN.fullmatch(placeholder)
                if match:
                    label, number = match.group(1), int(match.group(2))
                    output_redactor._counts[label] = max(output_redactor._counts.get(label, 0), number)
            text = output_redactor.redact(text, spans)
    if policy.restore_pii_in_response and restore_map:
        text = pii.restore(text, restore_map)

    state = team_state(team_id)
    if state.index:
        leak_spans: list[tuple[int, int, str]] = []
        block_finding: dict[str, Any] | None = None
        for source_match in classification.match_sources(text, state.index):
            source = state.sources[source_match.source_id]
            if source.classification <= caller_clearance:
                continue
            if source_match.share < source.leak_share and source_match.matched < LEAK_ABSOLUTE_SHINGLES:
                continue
            finding = {
                "type": "classification_leak",
                "source_id": source.source_id,
                "source": source.name,
                "classification": _level_name(source.classification),
                "score": round(source_match.share, 4),
                "matched_shingles": source_match.matched,
                "action": source.leak_action,
            }
            findings.append(finding)
            if source.leak_action == LeakAction.BLOCK:
                block_finding = block_finding or finding
            else:
                leak_spans.extend((start, end, _level_name(source.classification)) for start, end in source_match.spans)
        if block_finding is not None:
            return OutputCheck(
                text="",
                findings=findings,
                blocked=GuardrailBlocked(
                    f"The response reproduces the {block_finding['classification']} data source "
                    f"'{block_finding['source']}', above the caller's clearance ({_level_name(caller_clearance)}); "
                    "it was withheld.",
                    code="classification_leak",
                    param=None,
                ),
            )
        if leak_spans:
            text = classification.mask_spans(text, leak_spans)
    return OutputCheck(text=text, findings=findings)


def _declared_level(document: Mapping[str, Any]) -> int:
    declared = document.get("classification") or DEFAULT_DOCUMENT_CLASSIFICATION
    if isinstance(declared, int):
        return declared
    try:
        return int(Clearance.from_name(str(declared)))
    except ValueError:
        # An unknown label cannot be trusted to be low: treat it as the highest level.
        return int(Clearance.RESTRICTED)


def filter_documents(
    *,
    documents: list[dict[str, Any]],
    caller_clearance: int,
    team_id: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, dropped): documents whose effective level is above the caller's clearance are dropped.

    A document's effective level is the higher of its declared `classification` (internal when
    missing) and what the team's classification rules detect in its text. Kept documents carry
    their effective level as `classification`.
    """
    rules = team_state(team_id).rules
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for index, document in enumerate(documents):
        declared = _declared_level(document)
        detected, matched_rules = classification.text_level(document_text(document), rules) if rules else (None, [])
        level = max(declared, detected if detected is not None else declared)
        if level > caller_clearance:
            dropped.append(
                {
                    "id": document.get("id", index),
                    "position": index,
                    "classification": _level_name(level),
                    "declared_classification": _level_name(declared),
                    "detected_by": matched_rules,
                    "reason": ABOVE_CLEARANCE,
                }
            )
        else:
            kept.append({**document, "classification": _level_name(level)})
    return kept, dropped


def redact_for_viewer(*, text: str, viewer_clearance: int, team_id: int) -> str:
    """Stored call content as a viewer may see it: spans that a team rule classifies above the
    viewer's clearance, and passages reproduced from data sources above it, are masked."""
    if not text or viewer_clearance >= Clearance.RESTRICTED:
        return text
    state = team_state(team_id)
    spans: list[tuple[int, int, str]] = [
        (span.start, span.end, _level_name(span.level))
        for span in classification.rule_spans(text, state.rules)
        if span.level > viewer_clearance
    ]
    if state.index:
        for source_match in classification.match_sources(text, state.index):
            source = state.sources[source_match.source_id]
            if source.classification > viewer_clearance:
                spans.extend((start, end, _level_name(source.classification)) for start, end in source_match.spans)
    return classification.mask_spans(text, spans) if spans else text


# ---------------------------------------------------------------------------------------------
# Classification rules


def _validate_rule(*, kind: str, entities: Sequence[str], pattern: str, keywords: Sequence[str]) -> dict[str, Any]:
    if kind not in DetectorKind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(DetectorKind.values)}.", param="kind")
    if kind == DetectorKind.PII_ENTITY:
        if not entities:
            raise ValidationFailed("A pii_entity rule needs at least one entity type in 'entities'.", param="entities")
        return {"entities": validate_entities(entities, param="entities"), "pattern": "", "keywords": []}
    if kind == DetectorKind.REGEX:
        if not pattern:
            raise ValidationFailed("A regex rule needs a regular expression in 'pattern'.", param="pattern")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise ValidationFailed(f"pattern is limited to {MAX_PATTERN_LENGTH} characters.", param="pattern")
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValidationFailed(f"pattern is not a valid regular expression: {error}.", param="pattern") from None
        if compiled.search(""):
            raise ValidationFailed("pattern matches the empty string; make it match some text.", param="pattern")
        return {"entities": [], "pattern": pattern, "keywords": []}
    cleaned = [keyword.strip() for keyword in keywords if keyword.strip()]
    if not cleaned:
        raise ValidationFailed("A keywords rule needs at least one non-empty keyword in 'keywords'.", param="keywords")
    if len(cleaned) > MAX_KEYWORDS:
        raise ValidationFailed(f"keywords is limited to {MAX_KEYWORDS} entries.", param="keywords")
    return {"entities": [], "pattern": "", "keywords": cleaned}


def _require_unique_name(
    model: type[ClassificationRule] | type[DataSource], *, team: Team, name: str, pk: int | None
) -> None:
    queryset = model.objects.filter(team=team, name=name)
    if pk is not None:
        queryset = queryset.exclude(pk=pk)
    if queryset.exists():
        raise ValidationFailed(f"Team {team.name} already has one named '{name}'; choose another name.", param="name")


def classification_rule_create(
    *,
    caller: Caller,
    team: Team,
    name: str,
    kind: str,
    level: int,
    entities: Sequence[str] = (),
    pattern: str = "",
    keywords: Sequence[str] = (),
    is_enabled: bool = True,
) -> ClassificationRule:
    caller.require_permission(roles.ADD_CLASSIFICATION_RULE, team_id=team.id, action="add classification rules")
    detector = _validate_rule(kind=kind, entities=entities, pattern=pattern, keywords=keywords)
    with transaction.atomic():
        _require_unique_name(ClassificationRule, team=team, name=name, pk=None)
        rule = ClassificationRule.objects.create(
            team=team, name=name, kind=kind, level=level, is_enabled=is_enabled, **detector
        )
        _invalidate_after_commit(_team_states, team.id)
        _audit(
            caller=caller,
            action="classification.rule_create",
            target_type="classification_rule",
            target_id=rule.id,
            team_id=team.id,
            after=_state(rule, _RULE_FIELDS),
        )
    return rule


def _update_team_object(
    *,
    caller: Caller,
    instance: ClassificationRule | DataSource,
    changes: dict[str, Any],
    action: str,
    target_type: str,
) -> None:
    """Apply validated changes to a rule or source: unique name, save, every process's team
    state invalidated, the change audited."""
    from compliance.services import VALUE_CHANGED, secret_state

    with transaction.atomic():
        if "name" in changes:
            _require_unique_name(type(instance), team=instance.team, name=changes["name"], pk=instance.pk)
        before = {name: getattr(instance, name) for name in changes}
        for name, value in changes.items():
            setattr(instance, name, value)
        instance.save()
        _invalidate_after_commit(_team_states, instance.team_id)
        after = dict(changes)
        if "text_sha256" in changes and before["text_sha256"] != changes["text_sha256"]:
            before["source_text"], after["source_text"] = secret_state(before["text"]), VALUE_CHANGED
        _audit(
            caller=caller,
            action=action,
            target_type=target_type,
            target_id=instance.id,
            team_id=instance.team_id,
            before=before,
            after=after,
        )


def classification_rule_update(*, caller: Caller, rule: ClassificationRule, **changes: Any) -> ClassificationRule:
    caller.require_permission(
        roles.CHANGE_CLASSIFICATION_RULE, team_id=rule.team_id, action="change classification rules"
    )
    if "kind" in changes or "entities" in changes or "pattern" in changes or "keywords" in changes:
        detector = _validate_rule(
            kind=changes.get("kind", rule.kind),
            entities=changes.get("entities", rule.entities),
            pattern=changes.get("pattern", rule.pattern),
            keywords=changes.get("keywords", rule.keywords),
        )
        changes = {**changes, **detector}
    _update_team_object(
        caller=caller,
        instance=rule,
        changes=changes,
        action="classification.rule_update",
        target_type="classification_rule",
    )
    return rule


def classification_rule_delete(*, caller: Caller, rule: ClassificationRule) -> None:
    caller.require_permission(
        roles.DELETE_CLASSIFICATION_RULE, team_id=rule.team_id, action="delete classification rules"
    )
    team_id, rule_id, before = rule.team_id, rule.id, _state(rule, _RULE_FIELDS)
    with transaction.atomic():
        rule.delete()
        _invalidate_after_commit(_team_states, team_id)
        _audit(
            caller=caller,
            action="classification.rule_delete",
            target_type="classification_rule",
            target_id=rule_id,
            team_id=team_id,
            before=before,
        )


# ---------------------------------------------------------------------------------------------
# Data sources


def _validate_leak_share(leak_share: float) -> None:
    if not 0.0 < leak_share <= 1.0:
        raise ValidationFailed("leak_share must be above 0 and at most 1.", param="leak_share")


def data_source_create(
    *,
    caller: Caller,
    team: Team,
    name: str,
    text: str,
    classification_level: int,
    description: str = "",
    leak_action: str = LeakAction.BLOCK,
    leak_share: float = 0.2,
) -> DataSource:
    caller.require_permission(roles.ADD_DATA_SOURCE, team_id=team.id, action="register data sources")
    if not text.strip():
        raise ValidationFailed("text must not be empty: it is what responses are checked against.", param="text")
    _validate_leak_share(leak_share)
    with transaction.atomic():
        _require_unique_name(DataSource, team=team, name=name, pk=None)
        source = DataSource.objects.create(
            team=team,
            name=name,
            description=description,
            classification=classification_level,
            text=text,
            text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            fingerprints=classification.fingerprint(text),
            leak_action=leak_action,
            leak_share=leak_share,
        )
        _invalidate_after_commit(_team_states, team.id)
        _audit(
            caller=caller,
            action="data_source.create",
            target_type="data_source",
            target_id=source.id,
            team_id=team.id,
            after=_state(source, _SOURCE_FIELDS),
        )
    return source


def _require_cleared_for(caller: Caller, source: DataSource, *, level: int | None = None) -> None:
    needed = max(source.classification, level if level is not None else source.classification)
    if caller.clearance_in(source.team_id) < needed:
        raise PermissionDenied(
            f"Changing data source '{source.name}' needs {_level_name(needed)} clearance; yours is "
            f"{_level_name(caller.clearance_in(source.team_id))}. Ask a team admin to raise it."
        )


def data_source_update(*, caller: Caller, source: DataSource, **changes: Any) -> DataSource:
    caller.require_permission(roles.CHANGE_DATA_SOURCE, team_id=source.team_id, action="change data sources")
    _require_cleared_for(caller, source, level=changes.get("classification_level"))
    if "leak_share" in changes:
        _validate_leak_share(changes["leak_share"])
    if "text" in changes:
        text = changes["text"]
        if not text.strip():
            raise ValidationFailed("text must not be empty: it is what responses are checked against.", param="text")
        changes["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        changes["fingerprints"] = classification.fingerprint(text)
    if "classification_level" in changes:
        changes["classification"] = changes.pop("classification_level")
    _update_team_object(
        caller=caller, instance=source, changes=changes, action="data_source.update", target_type="data_source"
    )
    return source


def data_source_delete(*, caller: Caller, source: DataSource) -> None:
    caller.require_permission(roles.DELETE_DATA_SOURCE, team_id=source.team_id, action="delete data sources")
    _require_cleared_for(caller, source)
    team_id, source_id, before = source.team_id, source.id, _state(source, _SOURCE_FIELDS)
    with transaction.atomic():
        source.delete()
        _invalidate_after_commit(_team_states, team_id)
        _audit(
            caller=caller,
            action="data_source.delete",
            target_type="data_source",
            target_id=source_id,
            team_id=team_id,
            before=before,
        )
