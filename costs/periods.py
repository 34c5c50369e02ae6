"""Budget periods: the calendar period containing a moment, in the team's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from costs.models import BudgetPeriodKind

TOTAL_PERIOD_START = datetime(2000, 1, 1, tzinfo=UTC)


def period_bounds(*, period: str, at: datetime, time_zone: str) -> tuple[datetime, datetime | None]:
    """The calendar period containing `at`, aligned in the team's time zone, as UTC datetimes."""
    if period == BudgetPeriodKind.TOTAL:
        return TOTAL_PERIOD_START, None
    zone = ZoneInfo(time_zone)
    local = at.astimezone(zone)
    day = local.date()
    if period == BudgetPeriodKind.DAILY:
        first, following = day, day + timedelta(days=1)
    elif period == BudgetPeriodKind.WEEKLY:
        first = day - timedelta(days=day.weekday())  # weeks start on Monday (ISO 8601)
        following = first + timedelta(days=7)
    elif period == BudgetPeriodKind.MONTHLY:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {period!r}")

    def midnight(value: Any) -> datetime:
        return datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)

    return midnight(first), midnight(following)
