"""Call records fitted to their columns, whoever built them (gateway, refusal, ingestion, spool).

A record's values come from clients and providers: a 300-character model name, text with
NUL characters (PostgreSQL's text and jsonb cannot hold U+0000), a token count of 2**63.
The database would reject the whole batch such a record is stored in, so every record is
fitted here, once, on its way to a `Call` (`observability.services.call_from_record`):

- strings are cut to the column's `max_length` (characters, as PostgreSQL counts them);
- U+0000 becomes U+FFFD in every string, in JSON values recursively (keys too);
- integers are clamped to the column's range (the portable ranges Django declares, the
  ones PostgreSQL enforces, also on SQLite); non-finite floats in JSON become null;
- decimals are rounded to the column's places and clamped to its digits (NaN becomes 0).

The limits are read from the model's fields, so a migration that changes a column changes
what is fitted. The budget settlement a gateway record carries is fitted to the same money
range as `cost_usd`, so that the budget is charged what the record says.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from functools import cache
from typing import Any

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

from observability.models import Call

REPLACEMENT = "\ufffd"
_INTEGER_RANGES: dict[str, tuple[int, int]] = BaseDatabaseOperations.integer_field_ranges


def fit_text(value: str) -> str:
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value


def fit_json(value: Any) -> Any:
    """`value` without NUL characters in strings or keys and with non-finite floats as null."""
    if isinstance(value, str):
        return fit_text(value)
    if isinstance(value, dict):
        return {fit_text(str(key)): fit_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fit_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def integer_range(field: models.Field[Any, Any]) -> tuple[int, int]:
    return _INTEGER_RANGES[field.get_internal_type()]


def decimal_limit(field: models.DecimalField[Any, Any]) -> decimal.Decimal:
    """The largest value the column holds (999999.99999999 for 14 digits, 8 of them places)."""
    assert field.max_digits is not None
    assert field.decimal_places is not None
    return decimal.Decimal(10) ** (field.max_digits - field.decimal_places) - decimal.Decimal(10) ** (
        -field.decimal_places
    )


def _char_fitter(field: models.CharField[Any, Any]) -> Callable[[Any], Any]:
    length = field.max_length
    nullable = field.null

    def fit(value: Any) -> Any:
        if value is None:
            return None if nullable else ""
        text = fit_text(value if isinstance(value, str) else str(value))
        return text[:length] if length is not None and len(text) > length else text

    return fit


def _text_fitter(field: models.TextField[Any, Any]) -> Callable[[Any], Any]:
    nullable = field.null

    def fit(value: Any) -> Any:
        if value is None:
            return None if nullable else ""
        return fit_text(value if isinstance(value, str) else str(value))

    return fit


def _integer_fitter(field: models.Field[Any, Any]) -> Callable[[Any], Any]:
    lowest, highest = integer_range(field)
    nullable = field.null

    def fit(value: Any) -> Any:
        if isinstance(value, float) and math.isfinite(value):
            value = int(value)
        elif isinstance(value, float):
            value = highest if value > 0 else lowest
        elif not isinstance(value, int) and value is not None:
            try:
                value = int(decimal.Decimal(str(value)).to_integral_value())  # a number sent as text
            except (decimal.InvalidOperation, ValueError, OverflowError):
                value = None  # not a number (or NaN): what the column holds for none
        if value is None:
            return None if nullable else 0
        return min(max(value, lowest), highest)

    return fit


def fit_money(value: Any, *, field: models.DecimalField[Any, Any]) -> str:
    """`value` as the column stores it: rounded to its places, within its digits (text, as records hold it)."""
    try:
        amount = decimal.Decimal(str(value if value is not None else 0))
    except decimal.InvalidOperation:
        amount = decimal.Decimal(0)
    if amount.is_nan():
        amount = decimal.Decimal(0)
    limit = decimal_limit(field)
    amount = min(max(amount, -limit), limit)
    assert field.decimal_places is not None
    quantum = decimal.Decimal(10) ** -field.decimal_places
    return str(amount.quantize(quantum, rounding=decimal.ROUND_HALF_EVEN))


def _decimal_fitter(field: models.DecimalField[Any, Any]) -> Callable[[Any], Any]:
    def fit(value: Any) -> Any:
        return fit_money(value, field=field)

    return fit


def _json_fitter(field: models.JSONField[Any]) -> Callable[[Any], Any]:
    return fit_json


@cache
def fitters() -> dict[str, Callable[[Any], Any]]:
    """Record key -> the function that fits its value, for every column a client or provider fills."""
    table: dict[str, Callable[[Any], Any]] = {}
    for field in Call._meta.concrete_fields:
        if field.primary_key or field.is_relation:
            continue  # the id and the foreign keys are the gateway's own values
        fitter: Callable[[Any], Any] | None = None
        if isinstance(field, models.CharField):
            fitter = _char_fitter(field)
        elif isinstance(field, models.TextField):
            fitter = _text_fitter(field)
        elif isinstance(field, models.JSONField):
            fitter = _json_fitter(field)
        elif isinstance(field, models.DecimalField):
            fitter = _decimal_fitter(field)
        elif isinstance(field, models.IntegerField):  # every integer field, small to big, positive or not
            fitter = _integer_fitter(field)
        if fitter is not None:
            table[field.name] = fitter
    return table


def fit_value(name: str, value: Any) -> Any:
    """`value` fitted to the call record's column `name` (see the module's docstring)."""
    return fitters()[name](value)


def fit_settlement(settlement: dict[str, Any]) -> dict[str, Any]:
    """A budget settlement whose actual cost is what the record's `cost_usd` can hold."""
    field = Call._meta.get_field("cost_usd")
    assert isinstance(field, models.DecimalField)
    actual = fit_money(settlement.get("actual"), field=field)
    return settlement if actual == settlement.get("actual") else {**settlement, "actual": actual}


def fit_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of `record` whose every value fits its column (see the module's docstring)."""
    table = fitters()
    fitted = {name: (table[name](value) if name in table else value) for name, value in record.items()}
    settlement = fitted.get("budget_settlement")
    if settlement:
        fitted["budget_settlement"] = fit_settlement(settlement)
    return fitted
