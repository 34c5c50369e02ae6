"""Budget enforcement on the gateway's hot path: reserve, settle, release.

No overspend under concurrency: a reservation is one conditional UPDATE per applicable
budget-period row,

    UPDATE costs_budgetperiod SET reserved_units = reserved_units + x
    WHERE id = %s AND spent_units + reserved_units + x <= limit_units

in one transaction when several budgets apply (one UPDATE alone needs none), rows taken in
id order (so two reservations never wait on each other in opposite orders: no deadlock).
PostgreSQL re-evaluates the condition on the latest row version after a concurrent update
commits, so the check and the increment are one atomic step; SQLite serialises writers. If
a blocking budget's update matches no row, the transaction rolls back and nothing is reserved.

The gateway settles off the response path: the call record carries its reservation
(`Reservation.settlement()`) and the call recorder settles a whole batch with the records it
stores (`budget_settle_many`, in the same transaction, so a replayed record never settles
twice). Until then the worst case stays reserved: a budget is briefly held a little more
than spent, never less.

The common case, a team without budgets, costs one shared-cache read: each process keeps
every team's budget definitions keyed by a per-team generation token that budget writes
bump (see `budgets_changed`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from accounts.models import Team
from controlplane.errors import ApplicationError
from controlplane.generation_cache import generation_bump_key, generation_token
from costs.models import (
    Budget,
    BudgetAction,
    BudgetPeriod,
    BudgetPeriodKind,
    BudgetScope,
    usd_text,
    usd_to_units,
)

TOTAL_PERIOD_START = datetime(2000, 1, 1, tzinfo=UTC)


class BudgetExceeded(ApplicationError):
    """A blocking budget would be crossed: OpenAI's quota error shape, HTTP 429.

    `retry_after` is the whole number of seconds (at least 1) after which a retry can
    succeed, sent as the `Retry-After` header by the gateway and the API: until the period
    resets; or, for a total budget that only calls in flight keep full, one second (they
    settle within moments). None when waiting cannot help (a total budget already spent):
    the response then carries no `Retry-After`.
    """

    status_code = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"

    def __init__(
        self, message: str, *, budget_id: int, resets_at: datetime | None, freed_by_calls_in_flight: bool = False
    ) -> None:
        super().__init__(message)
        self.budget_id = budget_id
        self.resets_at = resets_at
        self.retry_after: int | None = None
        if resets_at is not None:
            self.retry_after = max(1, math.ceil((resets_at - datetime.now(UTC)).total_seconds()))
        elif freed_by_calls_in_flight:
            self.retry_after = 1


# Periods ---------------------------------------------------------------------------


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


# Budget definitions, cached per process -------------------------------------------


@dataclass(frozen=True)
class BudgetRule:
    id: int
    team_id: int
    name: str
    scope: str
    scope_value: str
    period: str
    amount_units: int
    thresholds: tuple[int, ...]
    action: str
    downgrade_model: str
    time_zone: str

    def applies(
        self, *, application_id: int, api_key_id: int | None, end_user: str, model: str, metadata: dict[str, Any]
    ) -> bool:
        scope, value = self.scope, self.scope_value
        if scope == BudgetScope.TEAM:
            return True
        if scope == BudgetScope.APPLICATION:
            return value == str(application_id)
        if scope == BudgetScope.API_KEY:
            return api_key_id is not None and value == str(api_key_id)
        if scope == BudgetScope.END_USER:
            return value == end_user
        if scope == BudgetScope.MODEL:
            return value == model
        if scope == BudgetScope.METADATA:
            tag, _, tag_value = value.partition("=")
            return tag in metadata and str(metadata[tag]) == tag_value
        return False

    def describe(self) -> str:
        scope = "team" if self.scope == BudgetScope.TEAM else f"{self.scope} {self.scope_value}"
        return f"budget '{self.name}' (id {self.id}, {scope}, {self.period})"


def _generation_key(team_id: int) -> str:
    return f"costs:budgets:generation:{team_id}"


def budgets_changed(*, team_id: int) -> None:
    """Invalidate a team's budget definitions in every process: now and on commit."""
    generation_bump_key(_generation_key(team_id))


class BudgetRuleCache:
    _MAX_TEAMS = 10_000

    def __init__(self) -> None:
        self._rules: dict[int, tuple[str, tuple[BudgetRule, ...]]] = {}
        # (generation, budget id, period start) -> BudgetPeriod id
        self._period_ids: dict[tuple[str, int, datetime], int] = {}
        self._lock = threading.Lock()

    def _generation(self, team_id: int) -> str:
        return generation_token(_generation_key(team_id))

    def rules(self, team_id: int) -> tuple[str, tuple[BudgetRule, ...]]:
        generation = self._generation(team_id)  # before the database: never cache old rules under a new token
        entry = self._rules.get(team_id)
        if entry is not None and entry[0] == generation:
            return entry
        time_zone = Team.objects.filter(pk=team_id).values_list("time_zone", flat=True).first() or "UTC"
        rules = tuple(
            BudgetRule(
                id=budget.id,
                team_id=team_id,
                name=budget.name,
                scope=budget.scope,
                scope_value=budget.scope_value,
                period=budget.period,
                amount_units=usd_to_units(budget.amount_usd),
                thresholds=tuple(sorted(int(value) for value in budget.thresholds)),
                action=budget.action,
                downgrade_model=budget.downgrade_model,
                time_zone=time_zone,
            )
            for budget in Budget.objects.filter(team_id=team_id, is_enabled=True).order_by("id")
        )
        with self._lock:
            if len(self._rules) >= self._MAX_TEAMS:
                self._rules.clear()
            self._rules[team_id] = (generation, rules)
        return generation, rules

    def period_ids(self, generation: str, targets: list[tuple[BudgetRule, datetime, datetime | None]]) -> list[int]:
        """The BudgetPeriod row of each (rule, period); missing rows are created."""
        missing = [
            (rule, start, end) for rule, start, end in targets if (generation, rule.id, start) not in self._period_ids
        ]
        if missing:
            BudgetPeriod.objects.bulk_create(
                [
                    BudgetPeriod(budget_id=rule.id, period_start=start, period_end=end, limit_units=rule.amount_units)
                    for rule, start, end in missing
                ],
                ignore_conflicts=True,
            )
            for rule, start, _ in missing:
                period_id = BudgetPeriod.objects.filter(budget_id=rule.id, period_start=start).values_list(
                    "id", flat=True
                )[0]
                with self._lock:
                    if len(self._period_ids) >= self._MAX_TEAMS * 4:
                        self._period_ids.clear()
                    self._period_ids[(generation, rule.id, start)] = period_id
        return [self._period_ids[(generation, rule.id, start)] for rule, start, _ in targets]

    def forget_periods(self) -> None:
        with self._lock:
            self._period_ids.clear()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._period_ids.clear()


rule_cache = BudgetRuleCache()


def applicable_rules(
    *, team_id: int, application_id: int, api_key_id: int | None, end_user: str, model: str, metadata: dict[str, Any]
) -> tuple[str, list[BudgetRule]]:
    generation, rules = rule_cache.rules(team_id)
    matching = [
        rule
        for rule in rules
        if rule.applies(
            application_id=application_id, api_key_id=api_key_id, end_user=end_user, model=model, metadata=metadata
        )
    ]
    return generation, matching


# Reservations ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservationItem:
    period_id: int
    budget_id: int
    units: int


@dataclass
class Reservation:
    """What `budget_reserve` holds for one call. `downgrade_to` names the cheaper model to call
    instead when a downgrade budget has reached its limit (None: call the requested model)."""

    team_id: int
    amount: Decimal
    at: datetime
    items: tuple[ReservationItem, ...] = ()
    downgrade_to: str | None = None
    downgraded_by: tuple[int, ...] = ()  # ids of the downgrade budgets that tripped
    is_open: bool = field(default=True)

    def settlement(self, actual: Decimal) -> dict[str, Any]:
        """Close this reservation and return what settling it needs, JSON-ready, for
        `budget_settle_many` to apply later (the call recorder settles from its spooled records)."""
        _require_open(self)
        return {
            "team": self.team_id,
            "items": [[item.period_id, item.units] for item in self.items],
            "actual": str(actual),
        }


_TABLE = BudgetPeriod._meta.db_table
_RESERVE_IF_FITS = (
    f"UPDATE {_TABLE} SET reserved_units = reserved_units + %s "  # noqa: S608 - table name is a constant
    "WHERE id = %s AND spent_units + reserved_units + %s <= limit_units"
)
_RESERVE = f"UPDATE {_TABLE} SET reserved_units = reserved_units + %s WHERE id = %s"  # noqa: S608 - constant
_SETTLE = (
    f"UPDATE {_TABLE} SET reserved_units = reserved_units - %s, spent_units = spent_units + %s "  # noqa: S608 - constant
    "WHERE id = %s RETURNING budget_id, period_start, spent_units, limit_units"
)


def _format_time(moment: datetime, time_zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(time_zone)).isoformat()} ({time_zone})"


def _exceeded(rule: BudgetRule, period_id: int, units: int) -> BudgetExceeded:
    row = BudgetPeriod.objects.filter(pk=period_id).values("spent_units", "reserved_units", "limit_units", "period_end")
    values = row[0]
    resets_at = values["period_end"]
    resets = (
        f"It resets at {_format_time(resets_at, rule.time_zone)}."
        if resets_at is not None
        else "It is a total budget and does not reset: raise its amount or wait for calls in flight to settle."
    )
    message = (
        f"This request would exceed {rule.describe()}: limit ${usd_text(values['limit_units'])}, "
        f"spent ${usd_text(values['spent_units'])} and ${usd_text(values['reserved_units'])} reserved "
        f"by calls in flight; this request needs up to ${usd_text(units)}. {resets} "
        "Lower max_tokens, use a cheaper model, or ask a manager to raise the budget."
    )
    return BudgetExceeded(
        message,
        budget_id=rule.id,
        resets_at=resets_at,
        freed_by_calls_in_flight=values["spent_units"] + units <= values["limit_units"],
    )


def _execute(sql: str, params: Iterable[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def budget_reserve(
    *,
    team_id: int,
    application_id: int,
    api_key_id: int | None,
    end_user: str,
    model: str,
    metadata: dict[str, Any],
    amount: Decimal,
    at: datetime,
) -> Reservation:
    """Reserve `amount` (the call's worst-case cost) against every budget that applies.

    Raises BudgetExceeded (429) and reserves nothing if a blocking budget would be crossed.
    A downgrade budget at its limit does not refuse: the amount is reserved against it all
    the same and `downgrade_to` names the model to call instead (the cheapest named, when
    several trip); calls to that model itself are not downgraded again.
    """
    generation, rules = applicable_rules(
        team_id=team_id,
        application_id=application_id,
        api_key_id=api_key_id,
        end_user=end_user,
        model=model,
        metadata=metadata or {},
    )
    reservation = Reservation(team_id=team_id, amount=amount, at=at)
    if not rules:
        return reservation
    units = max(usd_to_units(amount), 0)
    targets = [(rule, *period_bounds(period=rule.period, at=at, time_zone=rule.time_zone)) for rule in rules]
    for attempt in range(2):
        period_ids = rule_cache.period_ids(generation, targets)
        ordered = sorted(zip(period_ids, rules, strict=True), key=lambda pair: pair[0])
        try:
            items, downgrades = _reserve_rows(ordered, units=units, model=model)
        except _StalePeriodCache:
            if attempt:
                raise
            rule_cache.forget_periods()
            continue
        break
    reservation.items = items
    if downgrades:
        from costs.pricing import price_for  # a cycle at import time otherwise: pricing is light

        def output_price(name: str) -> Decimal:
            price = price_for(team_id=team_id, model=name, at=at)
            return price.output_per_million if price is not None else Decimal(0)

        reservation.downgrade_to = min((rule.downgrade_model for rule in downgrades), key=output_price)
        reservation.downgraded_by = tuple(rule.id for rule in downgrades)
    return reservation


class _StalePeriodCache(Exception):
    """A cached period row id no longer exists (its budget was deleted and recreated)."""


def _reserve_rows(
    ordered: list[tuple[int, BudgetRule]], *, units: int, model: str
) -> tuple[tuple[ReservationItem, ...], list[BudgetRule]]:
    items: list[ReservationItem] = []
    downgrades: list[BudgetRule] = []
    if units == 0:
        # A free call (the local model) passes every budget; settle still records its cost, if any.
        return tuple(ReservationItem(period_id, rule.id, 0) for period_id, rule in ordered), downgrades
    # One budget (the common case) is one conditional UPDATE: atomic on its own, so no
    # transaction (BEGIN and COMMIT would be two more round trips on the hot path).
    with transaction.atomic() if len(ordered) > 1 else nullcontext():
        for period_id, rule in ordered:
            is_downgrade = rule.action == BudgetAction.DOWNGRADE
            if is_downgrade and model == rule.downgrade_model:
                updated = _execute(_RESERVE, [units, period_id])
            else:
                updated = _execute(_RESERVE_IF_FITS, [units, period_id, units])
            if updated == 0:
                if not BudgetPeriod.objects.filter(pk=period_id).exists():
                    raise _StalePeriodCache
                if not is_downgrade:
                    raise _exceeded(rule, period_id, units)  # rolls back every reservation above
                _execute(_RESERVE, [units, period_id])
                downgrades.append(rule)
            items.append(ReservationItem(period_id=period_id, budget_id=rule.id, units=units))
    return tuple(items), downgrades


def _require_open(reservation: Reservation) -> None:
    if not reservation.is_open:
        raise ValueError("this reservation was already settled or released")
    reservation.is_open = False


def budget_settle(*, reservation: Reservation, actual: Decimal) -> None:
    """Replace the reservation by the call's actual cost and fire threshold alerts it crosses."""
    settlement = reservation.settlement(actual)
    if reservation.items:
        with transaction.atomic():
            budget_settle_many([settlement])


def budget_settle_many(settlements: Iterable[dict[str, Any]]) -> None:
    """Settle many calls at once (the call recorder's batch), each from `Reservation.settlement()`.

    One UPDATE per budget period row, rows in id order (no deadlock with reservations, which
    take rows in the same order); a threshold is crossed once however many calls in the batch
    crossed it. Call inside a transaction."""
    per_period: dict[int, list[int]] = {}  # period id -> [reserved units to return, actual units]
    team_of: dict[int, int] = {}
    for record in settlements:
        actual_units = max(usd_to_units(Decimal(record["actual"])), 0)
        for period_id, units in record["items"]:
            totals = per_period.setdefault(period_id, [0, 0])
            totals[0] += units
            totals[1] += actual_units
            team_of[period_id] = record["team"]
    crossings: dict[int, list[tuple[int, datetime, int, int, int]]] = {}
    for period_id in sorted(per_period):
        reserved, actual_units = per_period[period_id]
        with connection.cursor() as cursor:
            cursor.execute(_SETTLE, [reserved, actual_units, period_id])
            row = cursor.fetchone()
        if row is None or not actual_units:
            continue  # the budget was deleted meanwhile, or nothing was spent
        budget_id, period_start, spent, limit = row
        if isinstance(period_start, str):  # SQLite's RETURNING gives the stored text
            period_start = datetime.fromisoformat(period_start)
        if period_start.tzinfo is None:
            period_start = period_start.replace(tzinfo=UTC)
        crossings.setdefault(team_of[period_id], []).append(
            (budget_id, period_start, spent - actual_units, spent, limit)
        )
    for team_id, team_crossings in crossings.items():
        _fire_crossings(team_id, team_crossings)


def _fire_crossings(team_id: int, crossings: list[tuple[int, datetime, int, int, int]]) -> None:
    _, rules = rule_cache.rules(team_id)
    thresholds = {rule.id: rule.thresholds for rule in rules}
    for budget_id, period_start, before, after, limit in crossings:
        for threshold in thresholds.get(budget_id, ()):
            if before * 100 < threshold * limit <= after * 100:
                from costs.alerts import alert_fire  # alerts import this module

                alert_fire(
                    budget_id=budget_id,
                    period_start=period_start,
                    threshold=threshold,
                    spent_units=after,
                    limit_units=limit,
                )


def budget_release(*, reservation: Reservation) -> None:
    """Give the reservation back (the call failed before costing anything)."""
    budget_settle(reservation=reservation, actual=Decimal(0))
