"""Savings recommendations, rewritten by a periodic task from recent calls.

Rules (each suggested when it saves at least $1 a month):
- cheaper tier: an application's "simple" calls to a model (at most 1,000 input and 300
  output tokens) in the last 30 days priced at the model's cheaper tier.
- enable the cache: an application whose successful calls of the last 7 days that were not
  served from the cache repeat the same (normalised) last user message; the saving is the
  cost of every repeat beyond the first of each group, scaled to a month.
- cut context: a prompt version whose calls of the last 30 days (at least 20) spend more than
  half of their input tokens on context documents on average; the suggested document budget is
  the average of the other input tokens, and the saving is the document tokens above it priced
  at each call's model input price.

The cache and context rules are pure functions over rows read by `*_candidate_calls`.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import quote

from django.db import transaction
from django.utils import timezone

from costs import hooks
from costs.models import Recommendation, RecommendationKind
from costs.pricing import call_cost, price_for
from observability.selectors import (
    call_applications_with_uncached_successes,
    call_prompt_context_reports,
    call_small_spend_by_model,
    call_uncached_successes,
)

CHEAPER_TIER = {
    "gpt-4o": "gpt-4o-mini",
    "gpt-4.1": "gpt-4.1-mini",
    "gpt-4.1-mini": "gpt-4.1-nano",
    "gpt-5": "gpt-5-mini",
    "gpt-5-mini": "gpt-5-nano",
    "o3": "o4-mini",
    "o1": "o3-mini",
}
SIMPLE_INPUT_TOKENS = 1000
SIMPLE_OUTPUT_TOKENS = 300
MINIMUM_MONTHLY_SAVINGS = Decimal("1.00")


def recommendations_refresh() -> int:
    now = timezone.now()
    written = _cheaper_tier_refresh(now=now)
    written += _replace(
        RecommendationKind.ENABLE_CACHE,
        enable_cache_suggestions(cache_candidate_calls(since=now - timedelta(days=CACHE_WINDOW_DAYS))),
    )
    written += _replace(
        RecommendationKind.CUT_CONTEXT,
        cut_context_suggestions(
            context_candidate_calls(since=now - timedelta(days=CONTEXT_WINDOW_DAYS)),
            input_price_per_million=lambda model: _input_price(model=model, at=now),
        ),
    )
    return written


def _cheaper_tier_refresh(*, now: datetime) -> int:
    rows = call_small_spend_by_model(
        since=now - timedelta(days=30),
        models=list(CHEAPER_TIER),
        max_input_tokens=SIMPLE_INPUT_TOKENS,
        max_output_tokens=SIMPLE_OUTPUT_TOKENS,
    )
    written = 0
    with transaction.atomic():
        for row in rows:
            model, cheaper = row["response_model"], CHEAPER_TIER[row["response_model"]]
            cheaper_cost = call_cost(
                team_id=row["team_id"],
                model=cheaper,
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                at=now,
            )
            savings = (Decimal(row["cost"] or 0) - cheaper_cost).quantize(Decimal("0.01"))
            subject = f"application {row['application_id']} / {model}"
            if savings < MINIMUM_MONTHLY_SAVINGS:
                Recommendation.objects.filter(
                    team_id=row["team_id"], kind=RecommendationKind.CHEAPER_TIER, subject=subject
                ).delete()
                continue
            Recommendation.objects.update_or_create(
                team_id=row["team_id"],
                kind=RecommendationKind.CHEAPER_TIER,
                subject=subject,
                defaults={
                    "title": f"Send application {row['application_id']}'s simple {model} calls to {cheaper}",
                    "explanation": (
                        f"In the last 30 days {row['calls']} calls of application {row['application_id']} to {model} "
                        f"had at most {SIMPLE_INPUT_TOKENS} input and {SIMPLE_OUTPUT_TOKENS} output tokens. They cost "
                        f"${Decimal(row['cost'] or 0):.2f}; at {cheaper}'s prices they would have cost "
                        f"${cheaper_cost:.2f}. "
                        "Route them with a complexity-based policy in the gateway."
                    ),
                    "monthly_savings_usd": savings,
                    "evidence": [
                        {"label": "spend by model", "url": f"/costs/?team={row['team_id']}&group_by=model"},
                        {
                            "label": "application spend",
                            "url": f"/api/v1/costs/summary/?group_by=application&team={row['team_id']}",
                        },
                    ],
                },
            )
            written += 1
    return written


# Shared by the cache and context rules ------------------------------------------------------

CENT = Decimal("0.01")
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Suggestion:
    team_id: int
    subject: str
    title: str
    explanation: str
    monthly_savings_usd: Decimal
    evidence: list[dict[str, str]]


def _replace(kind: str, suggestions: list[Suggestion]) -> int:
    """Write this rule's suggestions and drop its earlier ones that no longer hold."""
    with transaction.atomic():
        kept: set[int] = set()
        for suggestion in suggestions:
            recommendation, _ = Recommendation.objects.update_or_create(
                team_id=suggestion.team_id,
                kind=kind,
                subject=suggestion.subject,
                defaults={
                    "title": suggestion.title,
                    "explanation": suggestion.explanation,
                    "monthly_savings_usd": suggestion.monthly_savings_usd,
                    "evidence": suggestion.evidence,
                },
            )
            kept.add(recommendation.id)
        Recommendation.objects.filter(kind=kind).exclude(id__in=kept).delete()
    return len(suggestions)


def _input_price(*, model: str, at: datetime) -> Decimal | None:
    price = price_for(team_id=None, model=model, at=at)  # the shared catalog's (or list) price: an estimate
    return price.input_per_million if price is not None else None


# Enable the cache -------------------------------------------------------------------------------

CACHE_WINDOW_DAYS = 7
MINIMUM_REPEATED_CALLS = 10  # "frequent": fewer repeats than this in a week is not worth a setting
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class CacheCall:
    team_id: int
    application_id: int
    created_at: datetime
    message: str  # the normalised last user message
    cost_usd: Decimal


def normalised_last_user_message(messages: Any) -> str:
    """The last user message's text, lower-cased with runs of white space collapsed ("" if none)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = " ".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
        return _SPACES.sub(" ", str(content or "")).strip().lower()
    return ""


def cache_candidate_calls(*, since: datetime) -> Iterator[CacheCall]:
    """Successful calls since `since` that the cache did not serve, of applications whose cache is not on."""
    summaries = hooks.cache_settings_summary(call_applications_with_uncached_successes(since=since))
    cached_applications = {application_id for application_id, summary in summaries.items() if summary.is_on}
    rows = call_uncached_successes(since=since, excluded_application_ids=cached_applications)
    for team_id, application_id, created_at, messages, cost in rows.iterator(chunk_size=2000):
        message = normalised_last_user_message(messages)
        if message:
            yield CacheCall(
                team_id=team_id,
                application_id=application_id,
                created_at=created_at,
                message=message,
                cost_usd=Decimal(cost or 0),
            )


def enable_cache_suggestions(calls: Iterable[CacheCall]) -> list[Suggestion]:
    by_application: dict[tuple[int, int], dict[str, list[CacheCall]]] = defaultdict(lambda: defaultdict(list))
    for call in calls:
        by_application[(call.team_id, call.application_id)][call.message].append(call)
    suggestions = []
    for (team_id, application_id), groups in sorted(by_application.items()):
        total_calls = sum(len(group) for group in groups.values())
        repeated_groups = [group for group in groups.values() if len(group) > 1]
        repeated_calls = sum(len(group) - 1 for group in repeated_groups)
        # The first call of each group pays for the answer; every later one would be a cache hit.
        weekly_savings = sum(
            (
                sum((call.cost_usd for call in group), Decimal(0))
                - min(group, key=lambda call: call.created_at).cost_usd
                for group in repeated_groups
            ),
            Decimal(0),
        )
        monthly_savings = (weekly_savings * 30 / CACHE_WINDOW_DAYS).quantize(CENT)
        if repeated_calls < MINIMUM_REPEATED_CALLS or monthly_savings < MINIMUM_MONTHLY_SAVINGS:
            continue
        most = max(len(group) for group in repeated_groups)
        suggestions.append(
            Suggestion(
                team_id=team_id,
                subject=f"application {application_id}",
                title=f"Enable the cache for application {application_id}",
                explanation=(
                    f"In the last {CACHE_WINDOW_DAYS} days application {application_id} made {total_calls} successful "
                    f"calls that the cache did not serve; {repeated_calls} of them repeated an earlier call's last "
                    f"user message exactly (after lower-casing and collapsing spaces): {len(repeated_groups)} "
                    f"messages were sent more than once, the most frequent {most} times. Those repeats cost "
                    f"${weekly_savings:.2f}, about ${monthly_savings:.2f} a month, that the cache would have answered "
                    "for free. Turn the cache on in the application's cache settings (try shadow mode first to "
                    "measure the hit rate)."
                ),
                monthly_savings_usd=monthly_savings,
                evidence=[{"label": "the application's calls", "url": f"/calls/?application={application_id}"}],
            )
        )
    return suggestions


# Cut context --------------------------------------------------------------------------------------

CONTEXT_WINDOW_DAYS = 30
MINIMUM_CONTEXT_CALLS = 20
DOCUMENT_SHARE_LIMIT = Decimal("0.5")


@dataclass(frozen=True)
class ContextCall:
    team_id: int
    prompt_id: int | None
    prompt_name: str
    prompt_version_id: int
    prompt_version: int | None
    model: str
    input_tokens: int
    document_tokens: int  # context_report["tokens"]["documents"]: included documents
    available_tokens: int | None  # context_report["budget"]["available"]
    document_budget: int | None  # context_report["budget"]["documents"]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def context_candidate_calls(*, since: datetime) -> Iterator[ContextCall]:
    """Successful calls since `since` of a prompt version whose context report counts document tokens."""
    rows = call_prompt_context_reports(since=since)
    for (
        team_id,
        prompt_id,
        name,
        version_id,
        version,
        response_model,
        request_model,
        input_tokens,
        report,
    ) in rows.iterator(chunk_size=2000):
        if version_id is None or not isinstance(report, Mapping):
            continue
        counts, budget = report.get("tokens"), report.get("budget")
        documents = _int_or_none(counts.get("documents")) if isinstance(counts, Mapping) else None
        if documents is None:
            continue
        budget = budget if isinstance(budget, Mapping) else {}
        yield ContextCall(
            team_id=team_id,
            prompt_id=prompt_id,
            prompt_name=name,
            prompt_version_id=version_id,
            prompt_version=version,
            model=response_model or request_model,
            input_tokens=input_tokens,
            document_tokens=min(documents, input_tokens),
            available_tokens=_int_or_none(budget.get("available")),
            document_budget=_int_or_none(budget.get("documents")),
        )


def cut_context_suggestions(
    calls: Iterable[ContextCall], *, input_price_per_million: Callable[[str], Decimal | None]
) -> list[Suggestion]:
    """`calls` in time order: the latest call of a version names it and gives its current budget."""
    by_version: dict[tuple[int, int], list[ContextCall]] = defaultdict(list)
    for call in calls:
        by_version[(call.team_id, call.prompt_version_id)].append(call)
    suggestions = []
    for (team_id, _), group in sorted(by_version.items()):
        count = len(group)
        if count < MINIMUM_CONTEXT_CALLS:
            continue
        share = sum((Decimal(call.document_tokens) / call.input_tokens for call in group), Decimal(0)) / count
        if share <= DOCUMENT_SHARE_LIMIT:
            continue
        # Documents at most as many tokens as the rest of the input: about half of it.
        suggested = sum(call.input_tokens - call.document_tokens for call in group) // count
        excess_tokens = 0
        savings = Decimal(0)
        for call in group:
            excess = max(call.document_tokens - suggested, 0)
            price = input_price_per_million(call.model)
            if excess and price is not None:
                excess_tokens += excess
                savings += excess * price / MILLION
        monthly_savings = savings.quantize(CENT)  # the window is 30 days: a month
        if monthly_savings < MINIMUM_MONTHLY_SAVINGS:
            continue
        latest = group[-1]
        label = f"{latest.prompt_name or f'version {latest.prompt_version_id}'} v{latest.prompt_version}"
        share_advice = ""
        if latest.available_tokens:
            suggested_share = (Decimal(suggested) / latest.available_tokens).quantize(CENT, rounding=ROUND_DOWN)
            current = ""
            if latest.document_budget is not None:
                current_share = (Decimal(latest.document_budget) / latest.available_tokens).quantize(CENT)
                current = f"from {current_share} ({latest.document_budget} tokens) "
            share_advice = f"Lower its context_budget.documents_share {current}to {suggested_share}. "
        average_documents = math.floor(sum(call.document_tokens for call in group) / count)
        evidence = [{"label": "the calls list", "url": "/calls/"}]
        if latest.prompt_id is not None:
            evidence = [{"label": f"prompt {latest.prompt_name}", "url": f"/prompts/{latest.prompt_id}/"}]
        if latest.prompt_name:
            evidence.append(
                {"label": "prompt versions (API)", "url": f"/api/v1/prompts/{quote(latest.prompt_name)}/versions/"}
            )
        suggestions.append(
            Suggestion(
                team_id=team_id,
                subject=f"prompt version {latest.prompt_version_id}",
                title=f"Cut the document context of prompt {label} to about {suggested} tokens",
                explanation=(
                    f"In the last {CONTEXT_WINDOW_DAYS} days {count} calls of prompt {label} spent "
                    f"{share * 100:.0f}% of their input tokens on context documents on average "
                    f"({average_documents} document tokens per call), more than the "
                    f"{DOCUMENT_SHARE_LIMIT * 100:.0f}% that usually matters. {share_advice}"
                    f"A document budget of {suggested} tokens (the average of the other input tokens) keeps the "
                    f"most relevant documents and drops the rest first; it would have saved {excess_tokens} input "
                    f"tokens, ${monthly_savings:.2f} a month at the models' input prices."
                ),
                monthly_savings_usd=monthly_savings,
                evidence=evidence,
            )
        )
    return suggestions
