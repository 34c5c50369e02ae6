"""Savings recommendations, rewritten by a periodic task from the last 30 days of calls.

Implemented rule (more to come: cache and context rules need the gateway's cache and context reports):
- cheaper tier: an application's "simple" calls to a model (at most 1,000 input and 300
  output tokens) priced at the model's cheaper tier; suggested when that saves at least $1 a month.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from costs.models import Recommendation, RecommendationKind
from costs.pricing import call_cost

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
    from observability.models import Call

    now = timezone.now()
    since = now - timedelta(days=30)
    rows = (
        Call.objects.filter(
            created_at__gte=since,
            response_model__in=list(CHEAPER_TIER),
            input_tokens__lte=SIMPLE_INPUT_TOKENS,
            output_tokens__lte=SIMPLE_OUTPUT_TOKENS,
        )
        .values("team_id", "application_id", "response_model")
        .annotate(
            calls=Count("id"),
            cost=Sum("cost_usd"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
    )
    written = 0
    with transaction.atomic():
        for row in rows:
            model, cheaper = row["response_model"], CHEAPER_TIER[row["response_model"]]
            cheaper_cost = call_cost(
                model=cheaper, input_tokens=row["input_tokens"], output_tokens=row["output_tokens"], at=now
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
