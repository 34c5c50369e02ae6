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

Every reservation is durable: the same statement that reserves on a period row inserts a
`BudgetReservation` row (`reservation_id` = the gateway's call id) naming what it holds,

    WITH reserved AS (UPDATE costs_budgetperiod SET ... WHERE ... RETURNING id)
    INSERT INTO costs_budgetreservation (...) SELECT ... FROM reserved

one round trip on PostgreSQL, as before (SQLite, which has no UPDATE inside WITH, runs the
UPDATE and the INSERT in one local transaction). Whoever moves a row out of `open` (settle or
release: `UPDATE ... WHERE state = 'open' RETURNING units`) gives its units back to the period
row, in the same transaction; a second settle or release of the same reservation finds no
open row and gives nothing back, so nothing is returned twice whatever the order.

The gateway settles off the response path: the call record carries its reservation
(`Reservation.settlement()`) and the call recorder settles a whole batch with the records it
stores (`budget_settle_many`, in the same transaction, so a replayed record never settles
twice). Until then the worst case stays reserved: a budget is briefly held a little more
than spent, never less. A call that fails after reserving releases at once (`budget_release`);
one whose process died (or whose record never arrived) is settled from its stored record or
released by the periodic `budget_reservations_reclaim`, once it is older than any call can
last. Lock order everywhere: reservation rows, then period rows in id order (a reservation
only inserts new reservation rows, so it never waits on one).

The common case, a team without budgets, costs one shared-cache read: each process keeps
every team's budget definitions keyed by a per-team generation token that budget writes
bump (see `budgets_changed`).
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from accounts.selectors import team_time_zone
from core.errors import ApplicationError
from core.generation_cache import generation_bump_key, generation_token
from core.ids import uuid7
from costs.alerts import alert_fire
from costs.models import (
    Budget,
    BudgetAction,
    BudgetPeriod,
    BudgetReservation,
    BudgetScope,
    ReservationState,
    usd_text,
    usd_to_units,
)
from costs.periods import period_bounds
from costs.pricing import price_for
from observability.selectors import call_teams_and_costs


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
        time_zone = team_time_zone(team_id=team_id) or "UTC"
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
    id: uuid.UUID = field(default_factory=uuid7)  # the gateway's call id; names its BudgetReservation rows
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
            "reservation": str(self.id),
            "items": [[item.period_id, item.units] for item in self.items],
            "actual": str(actual),
        }


_TABLE = BudgetPeriod._meta.db_table
_RESERVE_IF_FITS = (
    f"UPDATE {_TABLE} SET reserved_units = reserved_units + %s "  # noqa: S608 - table name is a constant
    "WHERE id = %s AND spent_units + reserved_units + %s <= limit_units"
)
_RESERVE = f"UPDATE {_TABLE} SET reserved_units = reserved_units + %s WHERE id = %s"  # noqa: S608 - constant
_ROWS = BudgetReservation._meta.db_table
_RECORD_ROW = (
    f"INSERT INTO {_ROWS} (reservation_id, period_id, units, state, created_at) "  # noqa: S608 - constant
    "SELECT %s, id, %s, 'open', %s FROM reserved"
)
# PostgreSQL: the reservation and its row in one statement (one round trip, atomic on its own).
_RESERVE_IF_FITS_AND_RECORD = f"WITH reserved AS ({_RESERVE_IF_FITS} RETURNING id) {_RECORD_ROW}"
_RESERVE_AND_RECORD = f"WITH reserved AS ({_RESERVE} RETURNING id) {_RECORD_ROW}"
_INSERT_ROW = (
    f"INSERT INTO {_ROWS} (reservation_id, period_id, units, state, created_at) "  # noqa: S608 - constant
    "VALUES (%s, %s, %s, 'open', %s)"
)
_RETURN = f"UPDATE {_TABLE} SET reserved_units = reserved_units - %s WHERE id = %s"  # noqa: S608 - constant
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
    reservation_id: uuid.UUID | str | None = None,
) -> Reservation:
    """Reserve `amount` (the call's worst-case cost) against every budget that applies.

    `reservation_id` (the gateway passes its call id, so that the reclaim can match the
    reservation to the call's record) names the durable rows of this reservation; a new id
    when None.

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
    if reservation_id is not None:
        reservation.id = reservation_id if isinstance(reservation_id, uuid.UUID) else uuid.UUID(reservation_id)
    if not rules:
        return reservation
    units = max(usd_to_units(amount), 0)
    targets = [(rule, *period_bounds(period=rule.period, at=at, time_zone=rule.time_zone)) for rule in rules]
    for attempt in range(2):
        period_ids = rule_cache.period_ids(generation, targets)
        ordered = sorted(zip(period_ids, rules, strict=True), key=lambda pair: pair[0])
        try:
            items, downgrades = _reserve_rows(ordered, units=units, model=model, reservation_id=reservation.id)
        except _StalePeriodCache:
            if attempt:
                raise
            rule_cache.forget_periods()
            continue
        break
    reservation.items = items
    if downgrades:

        def output_price(name: str) -> Decimal:
            price = price_for(team_id=team_id, model=name, at=at)
            return price.output_per_million if price is not None else Decimal(0)

        reservation.downgrade_to = min((rule.downgrade_model for rule in downgrades), key=output_price)
        reservation.downgraded_by = tuple(rule.id for rule in downgrades)
    return reservation


class _StalePeriodCache(Exception):
    """A cached period row id no longer exists (its budget was deleted and recreated)."""


_DB_FIELDS = {
    "reservation_id": BudgetReservation._meta.get_field("reservation_id"),
    "created_at": BudgetReservation._meta.get_field("created_at"),
    "closed_at": BudgetReservation._meta.get_field("closed_at"),
}


def _db_value(field_name: str, value: Any) -> Any:
    """A value as the database driver takes it (SQLite keeps UUIDs and datetimes as text)."""
    field = _DB_FIELDS[field_name]
    assert isinstance(field, Field)
    return field.get_db_prep_value(value, connection)


def _reserve_row(*, period_id: int, units: int, is_conditional: bool, row: list[Any]) -> bool:
    """Reserve `units` on one period row (only if they fit, when `is_conditional`) and record
    the reservation's row with it; whether it was reserved."""
    reservation_id, created_at = row
    if connection.vendor == "postgresql":
        if is_conditional:
            sql, params = _RESERVE_IF_FITS_AND_RECORD, [units, period_id, units, reservation_id, units, created_at]
        else:
            sql, params = _RESERVE_AND_RECORD, [units, period_id, reservation_id, units, created_at]
        return _execute(sql, params) == 1
    if is_conditional:
        updated = _execute(_RESERVE_IF_FITS, [units, period_id, units])
    else:
        updated = _execute(_RESERVE, [units, period_id])
    if updated:
        _execute(_INSERT_ROW, [reservation_id, period_id, units, created_at])
    return updated == 1


def _reserve_rows(
    ordered: list[tuple[int, BudgetRule]], *, units: int, model: str, reservation_id: uuid.UUID
) -> tuple[tuple[ReservationItem, ...], list[BudgetRule]]:
    items: list[ReservationItem] = []
    downgrades: list[BudgetRule] = []
    if units == 0:
        # A free call (the local model) passes every budget and holds nothing (no row to
        # reclaim); settle still records its cost, if any.
        return tuple(ReservationItem(period_id, rule.id, 0) for period_id, rule in ordered), downgrades
    row = [_db_value("reservation_id", reservation_id), _db_value("created_at", timezone.now())]
    # One budget (the common case) on PostgreSQL is one statement: atomic on its own, so no
    # transaction (BEGIN and COMMIT would be two more round trips on the hot path).
    is_one_statement = len(ordered) == 1 and connection.vendor == "postgresql"
    with nullcontext() if is_one_statement else transaction.atomic():
        for period_id, rule in ordered:
            is_downgrade = rule.action == BudgetAction.DOWNGRADE
            is_conditional = not (is_downgrade and model == rule.downgrade_model)
            reserved = _reserve_row(period_id=period_id, units=units, is_conditional=is_conditional, row=row)
            if not reserved:
                if not BudgetPeriod.objects.filter(pk=period_id).exists():
                    raise _StalePeriodCache
                if not is_downgrade:
                    raise _exceeded(rule, period_id, units)  # rolls back every reservation above
                _reserve_row(period_id=period_id, units=units, is_conditional=False, row=row)
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

    The batch's open reservation rows are marked settled in one UPDATE; only what that UPDATE
    moved out of `open` is given back (a reservation released meanwhile, by the gateway or the
    reclaim, adds its actual cost and gives nothing back twice). Then one UPDATE per budget
    period row, rows in id order (no deadlock with reservations, which take rows in the same
    order); a threshold is crossed once however many calls in the batch crossed it. Call
    inside a transaction."""
    settlements = list(settlements)
    held = _close_rows(
        [
            record["reservation"]
            for record in settlements
            if "reservation" in record and any(units for _, units in record["items"])
        ],
        state=ReservationState.SETTLED,
    )
    per_period: dict[int, list[int]] = {}  # period id -> [reserved units to return, actual units]
    team_of: dict[int, int] = {}
    for record in settlements:
        actual_units = max(usd_to_units(Decimal(record["actual"])), 0)
        # A settlement spooled before reservations had rows returns what it lists.
        returned = held.get(uuid.UUID(record["reservation"]), {}) if "reservation" in record else None
        for period_id, units in record["items"]:
            if record.get("only_if_open") and period_id not in (returned or {}):
                continue  # the reclaim settles what nobody settled meanwhile, never twice
            totals = per_period.setdefault(period_id, [0, 0])
            totals[0] += units if returned is None else returned.get(period_id, 0)
            totals[1] += actual_units
            team_of[period_id] = record["team"]
    crossings: dict[int, list[tuple[int, datetime, int, int, int]]] = {}
    for period_id in sorted(per_period):
        reserved, actual_units = per_period[period_id]
        if not reserved and not actual_units:
            continue
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
                alert_fire(
                    budget_id=budget_id,
                    period_start=period_start,
                    threshold=threshold,
                    spent_units=after,
                    limit_units=limit,
                )


def budget_release(*, reservation: Reservation) -> None:
    """Give the reservation back (the call failed before costing anything)."""
    _require_open(reservation)
    if any(item.units for item in reservation.items):
        budget_reservations_release(reservation_ids=[reservation.id])


def _close_rows(reservation_ids: list[Any], *, state: str) -> dict[uuid.UUID, dict[int, int]]:
    """Move these reservations' open rows to `state`; what each held, per period row, of the
    rows this call moved (none of a reservation settled or released before)."""
    if not reservation_ids:
        return {}
    closed: dict[uuid.UUID, dict[int, int]] = {}
    for start in range(0, len(reservation_ids), 500):
        chunk = [_db_value("reservation_id", uuid.UUID(str(value))) for value in reservation_ids[start : start + 500]]
        sql = (
            f"UPDATE {_ROWS} SET state = %s, closed_at = %s "  # noqa: S608 - constant table, placeholders only
            f"WHERE state = 'open' AND reservation_id IN ({', '.join(['%s'] * len(chunk))}) "
            "RETURNING reservation_id, period_id, units"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [state, _db_value("closed_at", timezone.now()), *chunk])
            for reservation_id, period_id, units in cursor.fetchall():
                held = closed.setdefault(uuid.UUID(str(reservation_id)), {})
                held[period_id] = held.get(period_id, 0) + units
    return closed


def budget_reservations_release(*, reservation_ids: Iterable[uuid.UUID | str]) -> int:
    """Give back what these reservations still hold (idempotent: a reservation already settled
    or released gives nothing back). Returns how many reservations were released."""
    with transaction.atomic():
        closed = _close_rows(list(reservation_ids), state=ReservationState.RELEASED)
        per_period: dict[int, int] = {}
        for held in closed.values():
            for period_id, units in held.items():
                per_period[period_id] = per_period.get(period_id, 0) + units
        for period_id in sorted(per_period):  # the lock order of reservations
            _execute(_RETURN, [per_period[period_id], period_id])
    return len(closed)


# Reclaim: reservations nothing settled ------------------------------------------------

# A call holds its reservation for at most the gateway's total timeout (its attempts), plus
# the time its answer streams and its record takes to be stored; past this margin nothing
# will settle it any more. Reclaiming earlier would leave the call's cost unreserved (it is
# still counted as spent when its record arrives, never returned twice).
RECLAIM_MARGIN = timedelta(minutes=10)
# Closed rows are kept this long for inspection, then deleted (nothing reads them to settle).
CLOSED_RESERVATION_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ReclaimResult:
    settled: int  # reservations settled from the call record that carried no settlement
    released: int  # reservations of calls with no record: given back
    deleted: int  # closed rows past their retention


def reclaim_age() -> timedelta:
    return timedelta(seconds=settings.GATEWAY_TOTAL_TIMEOUT_SECONDS) + RECLAIM_MARGIN


def budget_reservations_reclaim(*, older_than: timedelta | None = None) -> ReclaimResult:
    """Settle or release every reservation still open `older_than` after it was made (default:
    the gateway's total timeout plus RECLAIM_MARGIN): the call's process died, an unexpected
    error skipped the release, or its record was set aside. A reservation whose call record
    exists is settled at the record's cost; one without a record is released."""
    now = timezone.now()
    cutoff = now - (reclaim_age() if older_than is None else older_than)
    stale = list(
        BudgetReservation.objects.filter(state=ReservationState.OPEN, created_at__lt=cutoff)
        .values_list("reservation_id", flat=True)
        .distinct()
    )
    settled = released = 0
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        recorded = call_teams_and_costs(call_ids=chunk)  # the call record names the reservation (its id)
        if recorded:
            periods: dict[uuid.UUID, list[list[int]]] = {}
            for reservation_id, period_id in BudgetReservation.objects.filter(
                reservation_id__in=list(recorded), state=ReservationState.OPEN
            ).values_list("reservation_id", "period_id"):
                periods.setdefault(reservation_id, []).append([period_id, 1])
            with transaction.atomic():
                budget_settle_many(
                    {
                        "team": team_id,
                        "reservation": str(call_id),
                        "items": periods.get(call_id, []),  # the units returned are read from the rows
                        "actual": str(cost),
                        "only_if_open": True,
                    }
                    for call_id, (team_id, cost) in recorded.items()
                )
            settled += len(recorded)
        released += budget_reservations_release(
            reservation_ids=[reservation_id for reservation_id in chunk if reservation_id not in recorded]
        )
    deleted, _ = (
        BudgetReservation.objects.filter(closed_at__lt=now - CLOSED_RESERVATION_RETENTION)
        .exclude(state=ReservationState.OPEN)
        .delete()
    )
    return ReclaimResult(settled=settled, released=released, deleted=deleted)
