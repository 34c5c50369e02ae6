"""Call list filters, parsed once from a query string for the API and the pages alike.

Each bad value is refused with a `ValidationFailed` naming the parameter, so that both the
API (400 in OpenAI's error shape) and the pages (400 with the message) say what to fix.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.dates import parse_moment
from core.errors import ValidationFailed
from core.ids import parse_whole_number
from observability.models import CacheResult, CallStatus

METADATA_PREFIX = "metadata."
MAX_METADATA_FILTERS = 10
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-.:]{1,100}$")
_MAX_VALUE_LENGTH = 256


@dataclass(frozen=True)
class CallFilters:
    application_id: int | None = None
    model: str = ""
    status: str = ""
    end_user: str = ""
    prompt: str = ""
    cache_result: str = ""
    created_from: datetime.datetime | None = None
    created_to: datetime.datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        query: dict[str, str] = {}
        if self.application_id is not None:
            query["application"] = str(self.application_id)
        for name, value in (
            ("model", self.model),
            ("status", self.status),
            ("end_user", self.end_user),
            ("prompt", self.prompt),
            ("cache_result", self.cache_result),
        ):
            if value:
                query[name] = value
        if self.created_from is not None:
            query["from"] = self.created_from.isoformat()
        if self.created_to is not None:
            query["to"] = self.created_to.isoformat()
        for key, value in self.metadata.items():
            query[f"{METADATA_PREFIX}{key}"] = value
        return query


def _text(params: Mapping[str, Any], name: str) -> str:
    value = str(params.get(name) or "").strip()
    if len(value) > _MAX_VALUE_LENGTH:
        raise ValidationFailed(f"{name} is limited to {_MAX_VALUE_LENGTH} characters.", param=name)
    if "\x00" in value:  # PostgreSQL text cannot hold it: the query would fail (a 500)
        raise ValidationFailed(f"{name} cannot contain a NUL character.", param=name)
    return value


def _choice(params: Mapping[str, Any], name: str, choices: list[str]) -> str:
    value = _text(params, name)
    if value and value not in choices:
        raise ValidationFailed(f"{name} '{value}' is not one of: {', '.join(choices)}.", param=name)
    return value


def _moment(params: Mapping[str, Any], name: str) -> datetime.datetime | None:
    raw = _text(params, name)
    if not raw:
        return None
    return parse_moment(name, raw)


def parse_call_filters(params: Mapping[str, Any]) -> CallFilters:
    """Filters from query parameters; parameters this list does not know are ignored."""
    raw_application = _text(params, "application")
    application_id: int | None = None
    if raw_application:
        application_id = parse_whole_number(raw_application)
        if application_id is None:
            raise ValidationFailed(f"application '{raw_application}' is not an application id.", param="application")
    created_from = _moment(params, "from")
    created_to = _moment(params, "to")
    if created_from is not None and created_to is not None and created_from > created_to:
        raise ValidationFailed("from is after to; swap them or widen the range.", param="from")
    metadata: dict[str, str] = {}
    for name in sorted(params):
        if not name.startswith(METADATA_PREFIX):
            continue
        key = name[len(METADATA_PREFIX) :]
        if not _METADATA_KEY.match(key):
            raise ValidationFailed(
                f"'{name}' names no valid metadata key; use metadata.<key>=<value> with a key of letters, "
                "digits, '_', '-', '.' or ':'.",
                param=name,
            )
        metadata[key] = _text(params, name)
    if len(metadata) > MAX_METADATA_FILTERS:
        raise ValidationFailed(f"At most {MAX_METADATA_FILTERS} metadata filters are allowed.", param="metadata")
    return CallFilters(
        application_id=application_id,
        model=_text(params, "model"),
        status=_choice(params, "status", list(CallStatus.values)),
        end_user=_text(params, "end_user"),
        prompt=_text(params, "prompt"),
        cache_result=_choice(params, "cache_result", list(CacheResult.values)),
        created_from=created_from,
        created_to=created_to,
        metadata=metadata,
    )
