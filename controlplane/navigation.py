"""The areas of the product, in navigation order. Later issues replace placeholders."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Area:
    slug: str
    title: str
    summary: str
    issue: str


AREAS: list[Area] = [
    Area("prompts", "Prompts", "Versioned prompts, labels, diffs, A/B tests and context budgets.", "Prompt registry"),
    Area("gateway", "Gateway", "Providers, models and the OpenAI-compatible endpoint.", "Inference gateway"),
    Area("calls", "Calls", "Every recorded LLM call with its full trace.", "Inference gateway"),
    Area("reviews", "Reviews", "Review queues for flagged responses.", "Human review"),
    Area("evaluations", "Evaluations", "Datasets, eval runs and comparisons.", "Evaluations"),
    Area("costs", "Costs", "Spend, budgets, alerts and savings.", "Cost management"),
    Area("compliance", "Compliance", "Classification, guardrails and the audit trail.", "Security and compliance"),
]
AREAS_BY_SLUG = {area.slug: area for area in AREAS}
