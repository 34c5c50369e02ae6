"""What a caller or viewer may see of classified content: documents dropped above the caller's
clearance before a call (`filter_documents`), stored call content masked for a viewer
(`redact_for_viewer`). Like the checks, they read only process-cached state and never write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compliance.guardrails import classification
from compliance.guardrails.services.checks import document_text, level_name
from compliance.guardrails.services.state import team_state
from core.classification import Clearance

# Documents without a classification are internal, as in prompts.context.
DEFAULT_DOCUMENT_CLASSIFICATION = "internal"
ABOVE_CLEARANCE = "above_clearance"


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
                    "classification": level_name(level),
                    "declared_classification": level_name(declared),
                    "detected_by": matched_rules,
                    "reason": ABOVE_CLEARANCE,
                }
            )
        else:
            kept.append({**document, "classification": level_name(level)})
    return kept, dropped


def redact_for_viewer(*, text: str, viewer_clearance: int, team_id: int) -> str:
    """Stored call content as a viewer may see it: spans that a team rule classifies above the
    viewer's clearance, and passages reproduced from data sources above it, are masked."""
    if not text or viewer_clearance >= Clearance.RESTRICTED:
        return text
    state = team_state(team_id)
    spans: list[tuple[int, int, str]] = [
        (span.start, span.end, level_name(span.level))
        for span in classification.rule_spans(text, state.rules)
        if span.level > viewer_clearance
    ]
    if state.index:
        for source_match in classification.match_sources(text, state.index):
            source = state.sources[source_match.source_id]
            if source.classification > viewer_clearance:
                spans.extend((start, end, level_name(source.classification)) for start, end in source_match.spans)
    return classification.mask_spans(text, spans) if spans else text
