"""The range of dates and times accepted from users, and the one parser of them.

Python's datetime stops at years 1 and 9999: a filter at either edge overflows as soon as
the code adds a day or converts a time zone (a 500). Nothing this product stores is outside
1970-9000, so input outside that range is refused where it is parsed.

A UTC offset is any that ISO 8601 allows (up to +-23:59), but PostgreSQL refuses a timestamp
literal whose offset is beyond +-15:59 ("time zone displacement out of range", a 500): every
moment is therefore converted to UTC as it is parsed, which names the same instant.

Every entry point uses this module: `parse_moment` for query parameters, `MomentField` for
API serializers and `MomentFormField` for HTML forms.
"""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from core.errors import ValidationFailed

EARLIEST_YEAR = 1970
LATEST_YEAR = 9000
RANGE_MESSAGE = f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}"
FORMAT_HINT = "use ISO 8601 such as 2025-01-31 or 2025-01-31T12:00:00Z"


def is_supported(value: datetime.date) -> bool:
    """Whether a date or datetime from user input is within the accepted years."""
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


def _moment(raw: str) -> datetime.datetime | None:
    """An ISO 8601 date or date-time as written, or None when it is not one."""
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            value = datetime.datetime.combine(day, datetime.time.min) if day is not None else None
    except ValueError:  # well-formed but impossible, e.g. month 13 or an offset of 24 hours
        return None
    return value


def in_utc(value: datetime.datetime) -> datetime.datetime:
    """An accepted moment as an aware UTC datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=datetime.UTC)
    # Within the supported years, the conversion cannot leave Python's range.
    return value.astimezone(datetime.UTC)


def parse_moment(name: str, raw: str) -> datetime.datetime:
    """A user's ISO 8601 date or date-time (`param` `name`), in UTC (taken as UTC if it names no
    zone); ValidationFailed naming the parameter for anything else."""
    value = _moment(raw)
    if value is None:
        raise ValidationFailed(f"{name}: '{raw}' is not a date or time; {FORMAT_HINT}.", param=name)
    if not is_supported(value):
        raise ValidationFailed(f"{name}: '{raw}' {RANGE_MESSAGE}.", param=name)
    return in_utc(value)


class MomentField(serializers.DateTimeField):
    """An API date-time: ISO 8601, within the supported years, returned in UTC."""

    def to_internal_value(self, value: Any) -> datetime.datetime:
        if not isinstance(value, str):
            self.fail("invalid", format=FORMAT_HINT)
        moment = _moment(value.strip())
        if moment is None:
            self.fail("invalid", format=FORMAT_HINT)
        assert moment is not None  # for mypy: fail() raises
        if not is_supported(moment):
            raise serializers.ValidationError(f"The date {RANGE_MESSAGE}.", code="date_range")
        return in_utc(moment)


class MomentFormField(forms.DateTimeField):
    """A form's date-time (a browser's datetime-local input or ISO 8601), within the supported
    years, returned in UTC."""

    def to_python(self, value: Any) -> datetime.datetime | None:
        moment = super().to_python(value)
        if moment is None:
            return None
        if not is_supported(moment):
            raise forms.ValidationError(f"The date {RANGE_MESSAGE}.", code="date_range")
        return in_utc(moment)
