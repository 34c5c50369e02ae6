"""Checks shared by providers, models and routing: entry names, fallback chains, the
models a team's entries may name."""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.db.models import Q

from core.errors import ValidationFailed
from gateway.models import LanguageModel

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
MAX_FALLBACKS = 5


def validate_name(value: str, *, param: str = "name", max_length: int) -> str:
    if not value.strip():
        raise ValidationFailed(f"{param} is required.", param=param)
    name = value.strip()
    if len(name) > max_length:
        raise ValidationFailed(f"{param} must be at most {max_length} characters.", param=param)
    if not NAME_PATTERN.match(name):
        raise ValidationFailed(
            f"{param} '{name}' may use letters, digits and . _ : / @ + - (starting with a letter or digit).",
            param=param,
        )
    return name


def model_names_visible_to(team_id: int | None) -> set[str]:
    """Model names a team's entries may refer to: its own and the shared ones (shared: shared only)."""
    scope = Q(team__isnull=True) if team_id is None else Q(team__isnull=True) | Q(team_id=team_id)
    return set(LanguageModel.objects.filter(scope).values_list("name", flat=True))


def validate_fallbacks(
    value: Sequence[str] | None, *, visible: set[str], own_name: str, param: str = "fallbacks", scope: str
) -> list[str]:
    if value is None:
        return []
    names = [item.strip() for item in value]
    if len(names) > MAX_FALLBACKS:
        raise ValidationFailed(f"{param} may name at most {MAX_FALLBACKS} models.", param=param)
    if len(set(names)) != len(names):
        raise ValidationFailed(f"{param} names a model twice; list each model once.", param=param)
    if own_name and own_name in names:
        raise ValidationFailed(f"{param} cannot name '{own_name}' itself.", param=param)
    unknown = [name for name in names if name not in visible]
    if unknown:
        raise ValidationFailed(
            f"{param}: no model named {', '.join(repr(name) for name in unknown)} in {scope}; "
            "add the model first or fix the name.",
            param=param,
        )
    return names


def team_q(team_id: int | None) -> Q:
    return Q(team__isnull=True) if team_id is None else Q(team_id=team_id)
