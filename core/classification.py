"""Data clearance levels: every app classifies what it stores and checks callers against them."""

from __future__ import annotations

from django.db import models


class Clearance(models.IntegerChoices):
    """Ordered data clearance levels; stored as integers so that `<=` works in queries."""

    PUBLIC = 0, "public"
    INTERNAL = 10, "internal"
    CONFIDENTIAL = 20, "confidential"
    RESTRICTED = 30, "restricted"

    @classmethod
    def from_name(cls, name: str) -> Clearance:
        for member in cls:
            if member.label == name:
                return member
        raise ValueError(name)

    @classmethod
    def level_names(cls) -> list[str]:
        return [member.label for member in cls]
