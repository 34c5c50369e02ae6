from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from costs.models import Recommendation, RecommendationKind
from costs.recommendations import (
    ContextCall,
    cut_context_suggestions,
    normalised_last_user_message,
    recommendations_refresh,
)
from costs.tests.conftest import build_call
from gateway.semantic_cache.tests.factories import CacheSettingsFactory
from observability.models import Call

pytestmark = pytest.mark.django_db


def _asked(world: Any, question: str, *, hours_ago: float, cost: str = "0.35", **fields: Any) -> Call:
    values: dict[str, Any] = {
        "created_at": timezone.now() - timedelta(hours=hours_ago),
        "request_messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
        "input_tokens": 5000,  # not "simple": keeps the cheaper-tier rule out of these tests
        "cost_usd": Decimal(cost),
    }
    values.update(fields)
    return build_call(world, **values)


def test_the_last_user_message_is_normalised_from_text_or_content_parts():
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "  What IS\n the   refund"}, {"type": "text", "text": "policy? "}],
        },
    ]

    assert normalised_last_user_message(messages) == "what is the refund policy?"
    assert normalised_last_user_message([{"role": "system", "content": "x"}]) == ""
    assert normalised_last_user_message("not a list") == ""


def test_frequent_exact_duplicates_suggest_enabling_the_cache_with_the_cost_of_the_repeats(team_a):
    # Given 12 calls of one question (spelled with other cases and spaces) whose first cost $1.00
    # and the rest $0.35 each, 3 calls of another question, one unique question, and calls that
    # do not count: a cache hit, a failed call and one older than 7 days.
    calls = [_asked(team_a, "What is the refund policy?", hours_ago=100, cost="1.00")]
    calls += [_asked(team_a, "  what is THE refund   policy? ", hours_ago=90 - number) for number in range(11)]
    calls += [_asked(team_a, "Hello", hours_ago=50 - number) for number in range(3)]
    calls += [_asked(team_a, "Something else", hours_ago=10)]
    calls += [_asked(team_a, "Hello", hours_ago=5, cache_result="hit")]
    calls += [_asked(team_a, "Hello", hours_ago=5, status="error")]
    calls += [_asked(team_a, "Hello", hours_ago=24 * 8)]
    Call.objects.bulk_create(calls)

    # When the recommendations are refreshed
    assert recommendations_refresh() == 1

    # Then the 13 repeats (11 + 2) at $0.35 cost $4.55 a week: $19.50 in 30 days.
    recommendation = Recommendation.objects.get()
    application_id = team_a.application.id
    assert recommendation.team_id == team_a.team.id
    assert recommendation.kind == RecommendationKind.ENABLE_CACHE
    assert recommendation.subject == f"application {application_id}"
    assert recommendation.title == f"Enable the cache for application {application_id}"
    assert recommendation.monthly_savings_usd == Decimal("19.50")
    assert recommendation.evidence == [
        {"label": "the application's calls", "url": f"/calls/?application={application_id}"}
    ]
    assert (
        f"application {application_id} made 16 successful calls that the cache did not serve; 13 of them repeated"
        in recommendation.explanation
    )
    assert "2 messages were sent more than once, the most frequent 12 times" in recommendation.explanation
    assert "Those repeats cost $4.55, about $19.50 a month" in recommendation.explanation
    assert "refund" not in recommendation.explanation  # message text stays out of a team-wide suggestion


def test_no_cache_suggestion_when_the_cache_is_on_or_repeats_are_rare(team_a, team_b):
    Call.objects.bulk_create(
        [_asked(team_a, "Same question", hours_ago=number) for number in range(20)]
        + [_asked(team_b, "Same question", hours_ago=number, cost="5") for number in range(10)]  # 9 repeats
    )
    CacheSettingsFactory.create(application=team_a.application)
    Recommendation.objects.create(
        team=team_a.team,
        kind=RecommendationKind.ENABLE_CACHE,
        subject=f"application {team_a.application.id}",
        title="stale",
        explanation="stale",
        monthly_savings_usd=Decimal("9.99"),
    )

    assert recommendations_refresh() == 0

    assert Recommendation.objects.count() == 0  # the stale suggestion is gone too


def _context_call(world: Any, *, input_tokens: int, documents: int, hours_ago: float = 1, **fields: Any) -> Call:
    values: dict[str, Any] = {
        "created_at": timezone.now() - timedelta(hours=hours_ago),
        "prompt_id": 42,
        "prompt_name": "support-answer",
        "prompt_version_id": 7,
        "prompt_version": 3,
        "input_tokens": input_tokens,
        "cost_usd": Decimal("0.01"),
        "context_report": {
            "budget": {"available": 120_000, "documents": 60_000},
            "tokens": {"instructions": 1000, "documents": documents, "history": 0, "total": input_tokens},
        },
    }
    values.update(fields)
    return build_call(world, **values)


def test_prompts_carrying_mostly_documents_get_a_cut_context_suggestion(team_a):
    # Given 20 gpt-4o calls of one prompt version with 100,000 input tokens, 80,000 of them documents
    Call.objects.bulk_create(
        [_context_call(team_a, input_tokens=100_000, documents=80_000, hours_ago=number) for number in range(20)]
    )

    assert recommendations_refresh() == 1

    # Then the suggested budget is the other tokens' average, 20,000; the 60,000 tokens above it
    # per call, 1,200,000 in all, cost $2.50 per million at gpt-4o's input price: $3.00.
    recommendation = Recommendation.objects.get()
    assert recommendation.kind == RecommendationKind.CUT_CONTEXT
    assert recommendation.subject == "prompt version 7"
    assert recommendation.title == "Cut the document context of prompt support-answer v3 to about 20000 tokens"
    assert recommendation.monthly_savings_usd == Decimal("3.00")
    assert recommendation.evidence == [
        {"label": "prompt support-answer", "url": "/prompts/42/"},
        {"label": "prompt versions (API)", "url": "/api/v1/prompts/support-answer/versions/"},
    ]
    assert "20 calls of prompt support-answer v3 spent 80% of their input tokens" in recommendation.explanation
    assert "(80000 document tokens per call)" in recommendation.explanation
    assert "Lower its context_budget.documents_share from 0.50 (60000 tokens) to 0.16." in recommendation.explanation
    assert "it would have saved 1200000 input tokens, $3.00 a month" in recommendation.explanation


@pytest.mark.parametrize(
    ("count", "documents", "extra"),
    [
        (19, 80_000, {}),  # too few calls to judge
        (20, 50_000, {}),  # exactly half: not more than half
        (20, 80_000, {"status": "error"}),  # failed calls do not count
        (20, 80_000, {"created_at": timezone.now() - timedelta(days=31)}),  # too old
        (20, 80_000, {"context_report": {"documents": [{"id": "d1", "included": True}]}}),  # no token counts
    ],
)
def test_no_cut_context_suggestion_without_enough_evidence(team_a, count, documents, extra):
    Call.objects.bulk_create(
        [_context_call(team_a, input_tokens=100_000, documents=documents, **extra) for _ in range(count)]
    )

    assert recommendations_refresh() == 0

    assert Recommendation.objects.count() == 0


def test_cut_context_prices_each_call_at_its_models_input_price():
    def call(model: str, documents: int) -> ContextCall:
        return ContextCall(
            team_id=1,
            prompt_id=None,
            prompt_name="",
            prompt_version_id=9,
            prompt_version=1,
            model=model,
            input_tokens=10_000,
            document_tokens=documents,
            available_tokens=None,
            document_budget=None,
        )

    calls = [call("cheap", 9_000)] * 10 + [call("dear", 7_000)] * 9 + [call("unpriced", 9_000)]
    prices = {"cheap": Decimal("10"), "dear": Decimal("100")}

    [suggestion] = cut_context_suggestions(calls, input_price_per_million=prices.get)

    # Other tokens average (10 * 1,000 + 9 * 3,000 + 1,000) / 20 = 1,900 per call; above it:
    # 10 * 7,100 at $10/M = $0.71 and 9 * 5,100 at $100/M = $4.59; the unpriced call saves nothing.
    assert suggestion.monthly_savings_usd == Decimal("5.30")
    assert suggestion.title == "Cut the document context of prompt version 9 v1 to about 1900 tokens"
    assert suggestion.evidence == [{"label": "the calls list", "url": "/calls/"}]
    assert "documents_share" not in suggestion.explanation
