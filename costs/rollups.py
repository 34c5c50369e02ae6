"""Spend rollups by UTC hour and day per team, application, API key, model, end user and prompt.

`rollups_apply` is called by the gateway's call recorder right after it inserts a batch of
calls, in the same transaction. It folds the batch into one row per bucket and dimension
value in memory, then upserts with an increment:

    INSERT ... VALUES (...), (...) ON CONFLICT (team_id, granularity, dimension, bucket_start, key)
    DO UPDATE SET calls = costs_costrollup.calls + excluded.calls, ...

PostgreSQL and SQLite (3.24+) share this syntax. Django's bulk_create(update_conflicts=True)
would overwrite the counters instead of adding to them, so the statement is written here.
Rows are sent in a fixed order, so two concurrent batches lock shared rows in the same
order on PostgreSQL and do not deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import connection

from costs.models import CostRollup, RollupDimension, RollupGranularity, usd_to_units

if TYPE_CHECKING:
    from observability.models import Call

COUNTERS = (
    "calls",
    "error_calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_units",
    "cache_hits",
    "cache_saved_units",
    "routed_calls",
    "routing_saved_units",
)
_KEY_COLUMNS = ("team_id", "granularity", "dimension", "bucket_start", "key")
_CHUNK_ROWS = 500  # 15 parameters a row: well under SQLite's 32766 bound variables

RollupKey = tuple[int, str, str, datetime, str]


def _money(value: Any) -> Decimal:
    if value in (None, ""):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def call_dimensions(call: Call) -> list[tuple[str, str]]:
    """The (dimension, key) pairs a call counts under."""
    pairs = [
        (RollupDimension.TEAM.value, str(call.team_id)),
        (RollupDimension.APPLICATION.value, str(call.application_id)),
        (RollupDimension.MODEL.value, call.response_model or call.request_model or "unknown"),
    ]
    if call.api_key_id is not None:
        pairs.append((RollupDimension.API_KEY.value, str(call.api_key_id)))
    if call.end_user:
        pairs.append((RollupDimension.END_USER.value, call.end_user[:256]))
    if call.prompt_name:
        pairs.append((RollupDimension.PROMPT.value, call.prompt_name[:256]))
    return pairs


def call_counters(call: Call) -> tuple[int, ...]:
    is_cache_hit = call.cache_result == "hit"
    cache_saved = usd_to_units(_money(call.cache_saved_usd)) if is_cache_hit else 0
    routing_saved = usd_to_units(_money(call.routing_saved_usd))
    return (
        1,
        0 if call.status == "success" else 1,
        int(call.input_tokens or 0),
        int(call.output_tokens or 0),
        int(call.cached_tokens or 0),
        usd_to_units(_money(call.cost_usd)),
        1 if is_cache_hit else 0,
        max(cache_saved, 0),
        1 if call.route_reason else 0,
        max(routing_saved, 0),
    )


def fold(calls: Iterable[Call]) -> dict[RollupKey, list[int]]:
    """A batch of calls as rollup increments, one entry per bucket and dimension value."""
    increments: dict[RollupKey, list[int]] = {}
    for call in calls:
        created = _as_utc(call.created_at)
        hour = created.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        counters = call_counters(call)
        for dimension, key in call_dimensions(call):
            for granularity, bucket in ((RollupGranularity.HOUR.value, hour), (RollupGranularity.DAY.value, day)):
                rollup_key = (call.team_id, granularity, dimension, bucket, key)
                current = increments.get(rollup_key)
                if current is None:
                    increments[rollup_key] = list(counters)
                else:
                    for index, value in enumerate(counters):
                        current[index] += value
    return increments


def _upsert_sql(rows: int) -> str:
    table = CostRollup._meta.db_table
    columns = (*_KEY_COLUMNS, *COUNTERS)
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in COUNTERS)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608 - identifiers are constants
        + ", ".join([placeholder] * rows)
        + f" ON CONFLICT ({', '.join(_KEY_COLUMNS)}) DO UPDATE SET {updates}"
    )


def apply_increments(increments: dict[RollupKey, list[int]]) -> None:
    if not increments:
        return
    adapt = connection.ops.adapt_datetimefield_value
    ordered = sorted(increments.items(), key=lambda item: item[0])  # a fixed lock order: no deadlocks
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), _CHUNK_ROWS):
            chunk = ordered[start : start + _CHUNK_ROWS]
            params: list[Any] = []
            for (team_id, granularity, dimension, bucket, key), counters in chunk:
                params.extend((team_id, granularity, dimension, adapt(bucket), key, *counters))
            cursor.execute(_upsert_sql(len(chunk)), params)


def rollups_apply(*, calls: Sequence[Call]) -> None:
    """Add a batch of just-recorded calls to the hourly and daily rollups (incrementally)."""
    apply_increments(fold(calls))
