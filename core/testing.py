"""Test helpers shared by every app's tests.

`assert_hidden` is the cross-team check: a caller of team A acting on an object of team B
gets 404 (no existence leak) and nothing in the database changes. Adding it for a new
endpoint is one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Model, QuerySet
from django.test import Client
from rest_framework.test import APIClient


def snapshot(*sources: type[Model] | QuerySet[Any]) -> list[list[dict[str, Any]]]:
    """Every row of the given models or querysets, to compare before and after an action."""
    result = []
    for source in sources:
        queryset = source if isinstance(source, QuerySet) else source._default_manager.all()
        result.append(list(queryset.order_by("pk").values()))
    return result


def assert_openai_error(response: Any, status: int, *, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "message", "param", "code"}, error
    assert error["message"], "an error must say what to fix"
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def assert_refused(
    client: APIClient | Client,
    method: str,
    url: str,
    *,
    status: int,
    unchanged: Iterable[type[Model] | QuerySet[Any]],
    data: dict[str, Any] | None = None,
    code: str | None = None,
) -> Any:
    """The request is refused with `status` in the OpenAI error shape and changes nothing."""
    watched = list(unchanged)
    before = snapshot(*watched)
    response = (
        getattr(client, method.lower())(url, data=data, format="json")
        if data is not None
        else getattr(client, method.lower())(url)
    )
    after = snapshot(*watched)
    assert after == before, f"{method} {url} changed the database although it was refused"
    if isinstance(client, APIClient):
        assert_openai_error(response, status, code=code)
    else:
        assert response.status_code == status, response.status_code
    return response


def assert_hidden(
    client: APIClient | Client,
    method: str,
    url: str,
    *,
    unchanged: Iterable[type[Model] | QuerySet[Any]],
    data: dict[str, Any] | None = None,
) -> Any:
    """Another team's object: 404, not 403, and nothing changed."""
    return assert_refused(client, method, url, status=404, unchanged=unchanged, data=data)


def requires_postgresql(why: str = "SQLite serialises all writes") -> Any:
    """Mark a test that needs PostgreSQL (row locks under real concurrency, for example)."""
    return pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason=f"needs PostgreSQL: set DATABASE_URL=postgres://... ({why})",
    )
