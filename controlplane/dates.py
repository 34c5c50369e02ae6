"""The range of dates and times accepted from users.

Python's datetime stops at years 1 and 9999: a filter at either edge overflows as soon as
the code adds a day or converts a time zone (a 500). Nothing this product stores is outside
1970-9000, so input outside that range is refused where it is parsed.
"""

from __future__ import annotations

import datetime

EARLIEST_YEAR = 1970
LATEST_YEAR = 9000
RANGE_MESSAGE = f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}"


def is_supported(value: datetime.date) -> bool:
    """Whether a date or datetime from user input is within the accepted years."""
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


def parse_moment(name: str, raw: str) -> datetime.datetime:
    """A user's ISO 8601 date or date-time (`param` `name`), made aware (UTC if it names no
    zone); ValidationFailed naming the parameter for anything else."""
    from django.utils.dateparse import parse_date, parse_datetime
    from django.utils.timezone import is_naive, make_aware

    from controlplane.errors import ValidationFailed

    value: datetime.datetime | None = None
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            value = datetime.datetime.combine(day, datetime.time.min) if day is not None else None
    except ValueError:  # well-formed but impossible, e.g. month 13
        value = None
    if value is None:
        raise ValidationFailed(
            f"{name}: '{raw}' is not a date or time; use ISO 8601 such as 2025-01-31 or 2025-01-31T12:00:00Z.",
            param=name,
        )
    if not is_supported(value):
        raise ValidationFailed(f"{name}: '{raw}' {RANGE_MESSAGE}.", param=name)
    return make_aware(value, datetime.UTC) if is_naive(value) else value
