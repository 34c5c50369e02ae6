"""Filter pieces shared by every app's API."""

from __future__ import annotations

import django_filters
from django import forms

from core.ids import MAX_ID


class IdFilter(django_filters.NumberFilter):
    """A database id: a whole number that fits the column (anything else is a 400, not a
    database overflow)."""

    field_class = forms.IntegerField

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)
