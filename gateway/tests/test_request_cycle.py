"""The gateway's request steps: what they do to the database connection around each step."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connections

from accounts.models import Team
from gateway.executor import _in_request_cycle

pytestmark = pytest.mark.django_db(transaction=True)


def count_teams() -> int:
    return Team.objects.count()


@pytest.fixture(autouse=True)
def persistent_connection(monkeypatch):
    """Production keeps connections between requests (the test settings do not)."""
    connection = connections["default"]
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    yield
    connection.close()


def test_a_connection_used_a_moment_ago_is_not_pinged_before_the_next_step(settings):
    settings.GATEWAY_DB_CHECK_IDLE_SECONDS = 60
    connection = connections["default"]
    _in_request_cycle(count_teams, {})  # opens the connection

    with mock.patch.object(connection, "is_usable", wraps=connection.is_usable) as ping:
        _in_request_cycle(count_teams, {})
        skipped = ping.call_count
        settings.GATEWAY_DB_CHECK_IDLE_SECONDS = 0  # every step checks
        _in_request_cycle(count_teams, {})

    assert skipped == 0
    assert ping.call_count == 1


def test_after_a_database_error_the_next_step_checks_the_connection(settings):
    settings.GATEWAY_DB_CHECK_IDLE_SECONDS = 60
    connection = connections["default"]
    _in_request_cycle(count_teams, {})

    def broken() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    with mock.patch.object(connection, "is_usable", wraps=connection.is_usable) as ping:
        with pytest.raises(Exception, match="no_such_table"):
            _in_request_cycle(broken, {})
        teams = _in_request_cycle(count_teams, {})

    assert ping.call_count >= 1  # the error marked the connection: it was checked, not trusted
    assert teams == Team.objects.count()
