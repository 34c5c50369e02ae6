"""Token-budgeted context assembly: render a version, pick the documents and history turns
that fit its budget, and report what was included, what was dropped and why.

Pure functions over plain data; the service layer supplies the version and the caller's
clearance.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.classification import Clearance
from core.errors import ValidationFailed
from prompts import templating, tokens

DEFAULT_SHARES = {"instructions_share": 0.25, "documents_share": 0.5, "history_share": 0.25}
DEFAULT_OUTPUT_RESERVE = 1024
DEFAULT_MODEL = "gpt-4o-mini"
BUDGET_KEYS = frozenset({"context_window", "output_reserve", "min_relevance", *DEFAULT_SHARES})
# Documents that carry no classification are treated as internal: never shown to a public-only caller.
DEFAULT_DOCUMENT_CLASSIFICATION = "internal"

INCLUDED = "included"
DROPPED = "dropped"
OVER_BUDGET = "over_budget"
BELOW_RELEVANCE_CUTOFF = "below_relevance_cutoff"
ABOVE_CLEARANCE = "above_clearance"


def validate_budget(budget: Mapping[str, Any]) -> dict[str, Any]:
    """Check a version's context budget; raise naming the field. Returns it unchanged."""
    unknown = sorted(set(budget) - BUDGET_KEYS)
    if unknown:
        raise ValidationFailed(
            f"context_budget: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(BUDGET_KEYS))}.",
            param=f"context_budget.{unknown[0]}",
        )
    for key in ("context_window", "output_reserve"):
        if key in budget and (not isinstance(budget[key], int) or isinstance(budget[key], bool) or budget[key] < 1):
            raise ValidationFailed(f"context_budget.{key} must be a positive integer.", param=f"context_budget.{key}")
    for key in (*DEFAULT_SHARES, "min_relevance"):
        value = budget.get(key)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise ValidationFailed(f"context_budget.{key} must be a number >= 0.", param=f"context_budget.{key}")
    shares = sum(float(budget.get(key, default)) for key, default in DEFAULT_SHARES.items())
    if shares > 1.0 + 1e-9:
        raise ValidationFailed(
            f"context_budget: instructions_share + documents_share + history_share is {shares:g}; "
            "it must be at most 1.",
            param="context_budget",
        )
    if (
        "context_window" in budget
        and "output_reserve" in budget
        and budget["output_reserve"] >= budget["context_window"]
    ):
        raise ValidationFailed(
            "context_budget.output_reserve must be smaller than context_window.", param="context_budget.output_reserve"
        )
    return dict(budget)


@dataclass
class Budget:
    model: str
    context_window: int
    output_reserve: int
    instructions: int
    documents: int
    history: int
    min_relevance: float | None

    @property
    def available(self) -> int:
        return self.context_window - self.output_reserve

    def as_dict(self) -> dict[str, Any]:
        return {
            "context_window": self.context_window,
            "output_reserve": self.output_reserve,
            "available": self.available,
            "instructions": self.instructions,
            "documents": self.documents,
            "history": self.history,
            "min_relevance": self.min_relevance,
        }


def effective_budget(*, params: Mapping[str, Any], budget: Mapping[str, Any]) -> Budget:
    model = str(params.get("model") or DEFAULT_MODEL)
    window = int(budget.get("context_window") or tokens.context_window_for(model))
    reserve = int(budget.get("output_reserve") or params.get("max_tokens") or DEFAULT_OUTPUT_RESERVE)
    reserve = min(reserve, window - 1)
    available = window - reserve
    shares = {key: float(budget.get(key, default)) for key, default in DEFAULT_SHARES.items()}
    min_relevance = budget.get("min_relevance")
    return Budget(
        model=model,
        context_window=window,
        output_reserve=reserve,
        instructions=math.floor(available * shares["instructions_share"]),
        documents=math.floor(available * shares["documents_share"]),
        history=math.floor(available * shares["history_share"]),
        min_relevance=float(min_relevance) if min_relevance is not None else None,
    )


# Relevance -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def _terms(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def bm25_scores(query: str, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Okapi BM25 of each text against the query (0 for every text when the query is empty)."""
    query_terms = set(_terms(query))
    documents = [_terms(text) for text in texts]
    if not query_terms or not documents:
        return [0.0 for _ in texts]
    average_length = sum(len(words) for words in documents) / len(documents) or 1.0
    document_frequency: Counter[str] = Counter()
    for words in documents:
        document_frequency.update(set(words) & query_terms)
    count = len(documents)
    scores = []
    for words in documents:
        frequencies = Counter(words)
        score = 0.0
        for term in query_terms:
            frequency = frequencies.get(term, 0)
            if not frequency:
                continue
            idf = math.log(1 + (count - document_frequency[term] + 0.5) / (document_frequency[term] + 0.5))
            score += idf * frequency * (k1 + 1) / (frequency + k1 * (1 - b + b * len(words) / average_length))
        scores.append(round(score, 6))
    return scores


# Assembly --------------------------------------------------------------------------------


@dataclass
class Assembly:
    messages: list[dict[str, str]]
    report: dict[str, Any]
    token_counts: dict[str, int] = field(default_factory=dict)


def _format_document(document: Mapping[str, Any]) -> str:
    return f"[{document['id']}]\n{document['text']}"


def documents_message(selected: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    body = "\n\n".join(_format_document(document) for document in selected)
    return {"role": "system", "content": f"Use the following documents to answer.\n\n{body}"}


def _classification_level(document: Mapping[str, Any]) -> int:
    name = document.get("classification") or DEFAULT_DOCUMENT_CLASSIFICATION
    return int(Clearance.from_name(str(name)))


def included_documents_level(report: Mapping[str, Any]) -> int | None:
    """The highest classification of the documents a context report lists as included (None:
    no document reached the model). A label this code does not know counts as the highest."""
    levels = []
    for entry in report.get("documents") or []:
        if not isinstance(entry, Mapping) or not (entry.get("status") == INCLUDED or entry.get("included") is True):
            continue
        try:
            levels.append(_classification_level(entry))
        except ValueError:
            levels.append(int(Clearance.RESTRICTED))
    return max(levels) if levels else None


def assemble(
    *,
    messages: Sequence[Mapping[str, str]],
    params: Mapping[str, Any],
    context_budget: Mapping[str, Any],
    declared_variables: Sequence[str],
    variables: Mapping[str, Any],
    documents: Sequence[Mapping[str, Any]] = (),
    history: Sequence[Mapping[str, str]] = (),
    clearance: int = Clearance.PUBLIC,
) -> Assembly:
    """Render the version's messages, then fit documents and history into the budget."""
    templating.check_variables(declared=declared_variables, given=variables)
    budget = effective_budget(params=params, budget=context_budget)
    model = budget.model
    uses_documents = any("documents" in _template_names(message["content"]) for message in messages)

    def render(selected: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        values = {**variables, "documents": [dict(document) for document in selected]}
        return [
            {
                "role": message["role"],
                "content": templating.render_template(message["content"], values, where=f"messages[{index}].content"),
            }
            for index, message in enumerate(messages)
        ]

    instructions = render([])
    instruction_tokens = sum(tokens.count_message(message, model=model) for message in instructions)
    pinned_history = [turn for turn in history if turn.get("role") == "system"]
    pinned_tokens = sum(tokens.count_message(turn, model=model) for turn in pinned_history)
    required = instruction_tokens + pinned_tokens + tokens.TOKENS_FOR_REPLY
    if required > budget.available:
        raise ValidationFailed(
            f"The required parts do not fit the context window: instructions use {instruction_tokens} tokens, "
            f"system history {pinned_tokens}, the output reserve {budget.output_reserve}, in a window of "
            f"{budget.context_window} tokens ({required + budget.output_reserve - budget.context_window} too many). "
            "Shorten the template or variables, or raise context_budget.context_window.",
            code="context_length_exceeded",
            param="variables",
        )
    remaining = budget.available - required

    # Documents: drop above clearance, below cut-off; rank; pack greedily.
    query = " ".join(message["content"] for message in instructions if message["role"] != "system")
    query += " " + " ".join(turn.get("content", "") for turn in history[-1:] if turn.get("role") == "user")
    given = [document.get("score") for document in documents]
    computed = bm25_scores(query, [str(document["text"]) for document in documents])
    ranked = []
    for index, document in enumerate(documents):
        score = given[index]
        relevance, source = (float(score), "given") if score is not None else (computed[index], "bm25")
        ranked.append((index, document, relevance, source))
    ranked.sort(key=lambda item: (-item[2], item[0]))
    document_budget = min(budget.documents, remaining)
    document_overhead = tokens.count_message(documents_message([]), model=model) if not uses_documents else 0
    document_used = 0
    selected: list[Mapping[str, Any]] = []
    document_report: list[dict[str, Any]] = []
    for index, document, relevance, source in ranked:
        cost = tokens.count_text(_format_document(document) + "\n\n", model=model)
        entry: dict[str, Any] = {
            "id": document["id"],
            "position": index,
            "tokens": cost,
            "relevance": relevance,
            "relevance_source": source,
            "classification": document.get("classification") or DEFAULT_DOCUMENT_CLASSIFICATION,
            "status": DROPPED,
            "reason": None,
        }
        overhead = document_overhead if not selected else 0
        if _classification_level(document) > clearance:
            entry["reason"] = ABOVE_CLEARANCE
        elif budget.min_relevance is not None and relevance < budget.min_relevance:
            entry["reason"] = BELOW_RELEVANCE_CUTOFF
        elif document_used + overhead + cost > document_budget:
            entry["reason"] = OVER_BUDGET
        else:
            entry["status"] = INCLUDED
            document_used += overhead + cost
            selected.append(document)
        document_report.append(entry)
    remaining -= document_used

    # History: system turns always stay; the others are trimmed from the oldest.
    history_budget = min(budget.history, remaining)
    turn_costs = [tokens.count_message(turn, model=model) for turn in history]
    kept = [True] * len(history)
    used = sum(cost for turn, cost in zip(history, turn_costs, strict=True) if turn.get("role") != "system")
    for index, turn in enumerate(history):
        if used <= history_budget:
            break
        if turn.get("role") != "system":
            kept[index] = False
            used -= turn_costs[index]
    history_report: list[dict[str, Any]] = [
        {
            "index": index,
            "role": turn.get("role"),
            "tokens": turn_costs[index],
            "status": INCLUDED if kept[index] else DROPPED,
            "reason": None if kept[index] else OVER_BUDGET,
        }
        for index, turn in enumerate(history)
    ]
    kept_history = [
        {"role": turn["role"], "content": turn["content"]} for turn, keep in zip(history, kept, strict=True) if keep
    ]

    # Final messages: leading system messages, documents block, history, then the rest.
    rendered = render(selected) if uses_documents else instructions
    lead = 0
    while lead < len(rendered) and rendered[lead]["role"] == "system":
        lead += 1
    block = [documents_message(selected)] if selected and not uses_documents else []
    final = [*rendered[:lead], *block, *kept_history, *rendered[lead:]]
    counts = {
        "instructions": instruction_tokens,
        "documents": sum(entry["tokens"] for entry in document_report if entry["status"] == INCLUDED)
        + (document_overhead if block else 0),
        "history": sum(entry["tokens"] for entry in history_report if entry["status"] == INCLUDED),
        "total": tokens.count_messages(final, model=model),
    }
    report = {
        "model": model,
        "encoding": tokens.encoding_name_for(model),
        "budget": budget.as_dict(),
        "tokens": counts,
        "documents": document_report,
        "history": history_report,
        "dropped": [
            {"kind": "document", "id": entry["id"], "reason": entry["reason"]}
            for entry in document_report
            if entry["status"] == DROPPED
        ]
        + [
            {"kind": "history", "index": entry["index"], "reason": entry["reason"]}
            for entry in history_report
            if entry["status"] == DROPPED
        ],
    }
    return Assembly(messages=final, report=report, token_counts=counts)


def _template_names(source: str) -> set[str]:
    return set(templating.template_variables(source))


def dropped_document_counts(report: Mapping[str, Any]) -> tuple[int, int]:
    """(dropped, dropped above clearance): the caller's documents that did not reach the model.

    Reads a call's context report: the documents the gateway withheld before rendering
    (`dropped_above_clearance`) and those assembly dropped (`dropped`, with their reasons).
    The gateway answers these as response headers; the report itself stays on the call record.
    """
    withheld = report.get("dropped_above_clearance") or []
    assembled = [entry for entry in report.get("dropped") or [] if entry.get("kind") == "document"]
    above = len(withheld) + sum(1 for entry in assembled if entry.get("reason") == ABOVE_CLEARANCE)
    return len(withheld) + len(assembled), above
