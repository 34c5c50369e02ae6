"""Serializer base pieces shared by every app's API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from core.classification import Clearance
from core.ids import MAX_ID

# The largest value of an `integer` column (PositiveIntegerField and the like): a bound for
# numbers such as a prompt version that are stored or looked up in one.
MAX_INTEGER = 2**31 - 1


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, naming them, instead of silently ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                allowed = ", ".join(sorted(writable)) or "none"
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Allowed fields: {allowed}."] for name in unknown}
                )
        return super().to_internal_value(data)


class IdField(serializers.IntegerField):
    """An object's id: a whole number from 1 to the largest database id (a larger one is a
    400 naming the field, never a database error)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class ChoiceField(serializers.ChoiceField):
    """A choice field whose error lists the accepted values."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        accepted = ", ".join(str(key) for key in self.choices)
        self.error_messages["invalid_choice"] = f'"{{input}}" is not a valid choice; use one of: {accepted}.'


class ClearanceField(ChoiceField):
    """Clearance levels as their names ('internal') on the wire, integers in the database."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Clearance.level_names(), **kwargs)

    def get_default(self) -> Any:
        # Defaults are given as names, like input, but skip validation: convert them here.
        default = super().get_default()
        return int(Clearance.from_name(default)) if isinstance(default, str) else default

    def to_internal_value(self, data: Any) -> int:  # type: ignore[override]  # names in, integers out
        name = super().to_internal_value(data)
        return int(Clearance.from_name(name))

    def to_representation(self, value: Any) -> str:
        return str(Clearance(value).label)


def validated(serializer_class: type[serializers.Serializer], source: Request | Mapping[str, Any]) -> dict[str, Any]:
    """The validated data of a request's body (or of a mapping such as query parameters); a
    body that is not a JSON object, or fails the serializer, is a 400 naming the field."""
    data = source.data if isinstance(source, Request) else source
    if not isinstance(data, Mapping):
        raise serializers.ValidationError("The request body must be a JSON object.")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
