"""The checks the gateway runs on every call: `check_input` (PII per the policy, then prompt
injection) and `check_output` (PII, placeholder restoration, then the classification leak check).

Synchronous, they read only process-cached state (`state`) and never write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compliance.guardrails import classification, injection, pii
from compliance.guardrails.models import GuardrailPolicy
from compliance.guardrails.services.state import team_state
from compliance.guardrails.types import InjectionAction, LeakAction, PiiAction
from core.classification import Clearance
from core.errors import ApplicationError

# A response that reproduces this many 8-word shingles of a source leaks it whatever its share.
LEAK_ABSOLUTE_SHINGLES = 25
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


def level_name(level: int) -> str:
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
                "classification": level_name(source.classification),
                "score": round(source_match.share, 4),
                "matched_shingles": source_match.matched,
                "action": source.leak_action,
            }
            findings.append(finding)
            if source.leak_action == LeakAction.BLOCK:
                block_finding = block_finding or finding
            else:
                leak_spans.extend((start, end, level_name(source.classification)) for start, end in source_match.spans)
        if block_finding is not None:
            return OutputCheck(
                text="",
                findings=findings,
                blocked=GuardrailBlocked(
                    f"The response reproduces the {block_finding['classification']} data source "
                    f"'{block_finding['source']}', above the caller's clearance ({level_name(caller_clearance)}); "
                    "it was withheld.",
                    code="classification_leak",
                    param=None,
                ),
            )
        if leak_spans:
            text = classification.mask_spans(text, leak_spans)
    return OutputCheck(text=text, findings=findings)
