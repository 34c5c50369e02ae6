"""URL converters shared by every app's routes."""

from __future__ import annotations

from django.urls import register_converter


class DatabaseIdConverter:
    """A positive id that fits a 64-bit column: a longer one is a 404 at routing, not a
    database overflow error in a lookup."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DatabaseIdConverter, "id")
