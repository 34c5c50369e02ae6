"""Reads for costs, scoped to the caller's teams. Spend comes from rollups, never raw calls
(`cost_summary_from_calls` exists only to check and benchmark the rollups against)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.caller import Caller
from accounts.roles import role_permissions
from accounts.selectors import api_key_names_of_ids, application_names_of_ids, team_names_of_ids
from accounts.types import Role
from core.dates import RANGE_MESSAGE, is_supported
from core.errors import NotFound, ValidationFailed
from costs import permissions
from costs.models import (
    Budget,
    BudgetPeriod,
    CostRollup,
    Notification,
    Recommendation,
    RollupDimension,
    units_to_usd,
    usd_text,
    usd_to_units,
)
from costs.periods import period_bounds
from observability.selectors import call_spend_by_bucket

GroupBy = Literal["model", "application", "team", "user", "prompt", "api_key"]
GROUP_BY_DIMENSION: dict[str, str] = {
    "model": RollupDimension.MODEL,
    "application": RollupDimension.APPLICATION,
    "team": RollupDimension.TEAM,
    "user": RollupDimension.END_USER,
    "prompt": RollupDimension.PROMPT,
    "api_key": RollupDimension.API_KEY,
}
SUMMARY_FIELDS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_units",
    "cache_hits",
    "cache_saved_units",
    "routing_saved_units",
)


def teams_with(caller: Caller, permission: str, team_id: int | None = None) -> list[int]:
    team_ids = [team for team in caller.team_ids if caller.has_permission(permission, team_id=team)]
    if team_id is not None:
        if team_id not in caller.team_ids:
            raise NotFound(f"No team with id {team_id} exists in your teams.", param="team")
        if team_id not in team_ids:
            caller.require_permission(permission, team_id=team_id, action="view this team's costs")
        return [team_id]
    if not team_ids and caller.team_ids:
        caller.require_permission(permission, team_id=caller.team_ids[0], action="view costs")
    return team_ids


# Budgets -----------------------------------------------------------------------------


def budget_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[Budget]:
    return Budget.objects.filter(team_id__in=teams_with(caller, permissions.VIEW_BUDGET, team_id)).select_related(
        "team"
    )


def budget_get(*, caller: Caller, budget_id: int) -> Budget:
    try:
        budget = Budget.objects.select_related("team").get(pk=budget_id, team_id__in=caller.team_ids)
    except ObjectDoesNotExist:
        raise NotFound(f"No budget with id {budget_id} exists in your teams.") from None
    caller.require_permission(permissions.VIEW_BUDGET, team_id=budget.team_id, action="view budgets")
    return budget


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period_start: datetime
    resets_at: datetime | None
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    remaining_usd: Decimal
    percent_used: float
    forecast_usd: Decimal | None  # linear forecast of the spend at period end


def budget_status(*, budget: Budget, at: datetime | None = None, period: BudgetPeriod | None = None) -> BudgetStatus:
    now = at or timezone.now()
    start, end = period_bounds(period=budget.period, at=now, time_zone=budget.team.time_zone)
    if period is None:
        period = BudgetPeriod.objects.filter(budget=budget, period_start=start).first()
    limit_units = period.limit_units if period is not None else usd_to_units(budget.amount_usd)
    spent = period.spent_units if period is not None else 0
    reserved = period.reserved_units if period is not None else 0
    forecast = None
    if end is not None:
        elapsed = (now - start).total_seconds()
        if elapsed > 0:
            forecast = units_to_usd(int(spent * (end - start).total_seconds() / elapsed))
    return BudgetStatus(
        budget=budget,
        period_start=start,
        resets_at=end,
        limit_usd=units_to_usd(limit_units),
        spent_usd=units_to_usd(spent),
        reserved_usd=units_to_usd(reserved),
        remaining_usd=units_to_usd(max(limit_units - spent - reserved, 0)),
        percent_used=round(100 * spent / limit_units, 1) if limit_units else 0.0,
        forecast_usd=forecast,
    )


def budget_statuses(*, caller: Caller, team_id: int | None = None) -> list[BudgetStatus]:
    """Every visible budget's current status, in two queries."""
    budgets = list(budget_list(caller=caller, team_id=team_id).order_by("team_id", "name", "id"))
    now = timezone.now()
    starts = {
        budget.id: period_bounds(period=budget.period, at=now, time_zone=budget.team.time_zone)[0] for budget in budgets
    }
    periods = {
        (period.budget_id, period.period_start): period
        for period in BudgetPeriod.objects.filter(
            budget_id__in=[budget.id for budget in budgets], period_start__in=set(starts.values())
        )
    }
    return [
        budget_status(budget=budget, at=now, period=periods.get((budget.id, starts[budget.id]))) for budget in budgets
    ]


# Spend -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryQuery:
    team_ids: list[int]
    group_by: str
    start: datetime
    end: datetime
    interval: str
    top: int = 20  # the largest groups by cost; the rest are summed into OTHER


OTHER = "(other)"
MAX_TOP = 1000


def summary_query(
    *,
    caller: Caller,
    group_by: str,
    start: datetime | None,
    end: datetime | None,
    interval: str,
    team_id: int | None = None,
    top: int = 20,
) -> SummaryQuery:
    for name, value in (("from", start), ("to", end)):
        if value is not None and not is_supported(value):
            raise ValidationFailed(f"{name} {RANGE_MESSAGE}.", param=name)
    end = end or timezone.now()
    start = start or end - timedelta(days=30)
    if start >= end:
        raise ValidationFailed("from must be before to.", param="from")
    if not 1 <= top <= MAX_TOP:
        raise ValidationFailed(f"top must be between 1 and {MAX_TOP}.", param="top")
    return SummaryQuery(
        team_ids=teams_with(caller, permissions.VIEW_SPEND, team_id),
        group_by=group_by,
        start=start,
        end=end,
        interval=interval,
        top=top,
    )


def _fold_top(rows: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """Keep the `top` keys by total cost (ties by key); sum the others per bucket under OTHER."""
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["key"]] = totals.get(row["key"], 0) + int(row["cost_units"] or 0)
    kept = {key for key, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top]}
    folded: list[dict[str, Any]] = []
    other: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row["key"] in kept:
            folded.append(row)
            continue
        merged = other.setdefault(
            row["bucket"], {"bucket": row["bucket"], "key": OTHER, **dict.fromkeys(SUMMARY_FIELDS, 0)}
        )
        for name in SUMMARY_FIELDS:
            merged[name] += int(row[name] or 0)
    folded.extend(other.values())
    return sorted(folded, key=lambda row: (row["bucket"], row["key"]))


def _labels(group_by: str, keys: set[str], team_ids: list[int]) -> dict[str, str]:
    ids = [int(key) for key in keys if key.isdigit()]
    if group_by == "application":
        names = application_names_of_ids(application_ids=ids, team_ids=team_ids)
    elif group_by == "team":
        names = team_names_of_ids(team_ids=ids)
    elif group_by == "api_key":
        names = api_key_names_of_ids(key_ids=ids, team_ids=team_ids)
    else:
        return {key: key for key in keys}
    return {str(pk): name for pk, name in names.items()}


def _summary_body(query: SummaryQuery, rows: list[dict[str, Any]]) -> dict[str, Any]:
    labels = _labels(query.group_by, {row["key"] for row in rows}, query.team_ids)
    totals: dict[str, dict[str, int]] = {}
    series = []
    for row in rows:
        key = row["key"]
        total = totals.setdefault(key, dict.fromkeys(SUMMARY_FIELDS, 0))
        for name in SUMMARY_FIELDS:
            total[name] += int(row[name] or 0)
        bucket = row["bucket"]
        series.append(
            {"bucket": bucket.astimezone(UTC).isoformat(), "group": key, "label": labels.get(key, key), **_public(row)}
        )
    ordered = sorted(totals.items(), key=lambda item: (-item[1]["cost_units"], item[0]))
    return {
        "group_by": query.group_by,
        "interval": query.interval,
        "from": query.start.astimezone(UTC).isoformat(),
        "to": query.end.astimezone(UTC).isoformat(),
        "total_cost_usd": usd_text(sum(total["cost_units"] for total in totals.values())),
        "groups": [{"group": key, "label": labels.get(key, key), **_public(total)} for key, total in ordered],
        "series": series,
    }


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "cost_usd": usd_text(int(row["cost_units"] or 0)),
        "calls": int(row["calls"] or 0),
        "input_tokens": int(row["input_tokens"] or 0),
        "output_tokens": int(row["output_tokens"] or 0),
        "cached_tokens": int(row["cached_tokens"] or 0),
        "cache_hits": int(row["cache_hits"] or 0),
        "cache_saved_usd": usd_text(int(row["cache_saved_units"] or 0)),
        "routing_saved_usd": usd_text(int(row["routing_saved_units"] or 0)),
    }


def cost_summary(*, query: SummaryQuery) -> dict[str, Any]:
    """Spend per bucket and group from the rollups; buckets are UTC hours or days."""
    base = CostRollup.objects.filter(
        team_id__in=query.team_ids,
        granularity=query.interval,
        dimension=GROUP_BY_DIMENSION[query.group_by],
        bucket_start__gte=query.start,
        bucket_start__lt=query.end,
    )
    sums = {name: Sum(name) for name in SUMMARY_FIELDS}
    # The largest groups are chosen in the database, so a summary over many end users or
    # prompts returns top x buckets rows (+ one OTHER row per bucket), not every pair.
    top_keys = list(
        base.values("key")
        .annotate(total=Sum("cost_units"))
        .order_by("-total", "key")
        .values_list("key", flat=True)[: query.top]
    )
    rows: list[dict[str, Any]] = [
        dict(row) for row in base.filter(key__in=top_keys).values("bucket_start", "key").annotate(**sums).order_by()
    ]
    rows += [
        {**row, "key": OTHER}
        for row in base.exclude(key__in=top_keys).values("bucket_start").annotate(**sums).order_by()
    ]
    for row in rows:
        row["bucket"] = row.pop("bucket_start")
    rows.sort(key=lambda row: (row["bucket"], row["key"]))
    return _summary_body(query, rows)


def cost_summary_from_calls(*, query: SummaryQuery) -> dict[str, Any]:
    """The same summary computed from raw calls: only to check and benchmark the rollups."""
    rows = call_spend_by_bucket(
        team_ids=query.team_ids, start=query.start, end=query.end, group_by=query.group_by, interval=query.interval
    )
    for row in rows:
        for money, units in (
            ("cost", "cost_units"),
            ("cache_saved", "cache_saved_units"),
            ("routing_saved", "routing_saved_units"),
        ):
            row[units] = int((Decimal(str(row.pop(money) or 0)) * 100_000_000).to_integral_value())
    return _summary_body(query, _fold_top(rows, query.top))


def notification_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[Notification]:
    return Notification.objects.filter(team_id__in=teams_with(caller, permissions.VIEW_SPEND, team_id))


def recommendation_list(*, caller: Caller, team_id: int | None = None) -> QuerySet[Recommendation]:
    return Recommendation.objects.filter(team_id__in=teams_with(caller, permissions.VIEW_SPEND, team_id))


def notification_get(*, caller: Caller, notification_id: int) -> Notification:
    try:
        return notification_list(caller=caller).get(pk=notification_id)
    except ObjectDoesNotExist:
        raise NotFound(f"No notification with id {notification_id} exists in your teams.") from None


def notification_unread_count(*, user_id: int) -> int:
    """Unread notifications of the teams where the user's role may view spend: one COUNT
    query (memberships joined, no caller built), cheap enough for every page's navigation."""
    roles = [role for role, _ in Role.choices if permissions.VIEW_SPEND in role_permissions(role)]
    return (
        Notification.objects.filter(
            read_at__isnull=True, team__memberships__user_id=user_id, team__memberships__role__in=roles
        )
        .values("pk")
        .count()
    )
