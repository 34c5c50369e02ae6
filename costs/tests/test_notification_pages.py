from __future__ import annotations

import pytest

from core.testing import assert_hidden
from costs.models import Notification
from costs.tests.factories import NotificationFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _notify(team, number: int, *, is_read: bool = False) -> Notification:
    return NotificationFactory.create(
        team=team, title=f"{team.name} alert {number}", link="/costs/budgets/", is_read=is_read
    )


def test_the_notifications_page_lists_the_teams_notifications_with_the_unread_count(
    team_a, team_b, page_client_for, django_assert_max_num_queries
):
    for number in range(3):
        _notify(team_a.team, number)
    _notify(team_a.team, 9, is_read=True)
    _notify(team_b.team, 1)
    client = page_client_for(team_a.members["viewer"])
    client.get("/costs/notifications/")

    with django_assert_max_num_queries(10):
        response = client.get("/costs/notifications/")

    page = response.content.decode()
    assert response.status_code == 200
    assert '<span class="badge" id="unread-count">3 unread</span>' in page
    assert page.count('<tr id="notification-') == 4
    assert page.count('class="unread"') == 3
    assert f"{team_b.team.name} alert" not in page


def test_marking_one_notification_read_returns_the_section(team_a, page_client_for):
    first, second = _notify(team_a.team, 1), _notify(team_a.team, 2)
    client = page_client_for(team_a.members["viewer"])

    response = client.post(f"/costs/notifications/{first.id}/read/", **HTMX)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert '<span class="badge" id="unread-count">1 unread</span>' in page
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None
    assert second.read_at is None


def test_marking_all_read_marks_only_the_callers_teams(team_a, team_b, page_client_for):
    mine = [_notify(team_a.team, number) for number in range(2)]
    theirs = _notify(team_b.team, 1)
    client = page_client_for(team_a.members["viewer"])

    response = client.post("/costs/notifications/read/", **HTMX)

    assert response.status_code == 200
    assert "Marked 2 notifications as read." in response.content.decode()
    assert Notification.objects.filter(id__in=[n.id for n in mine], read_at__isnull=True).count() == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_another_teams_notification_cannot_be_marked_read(team_a, team_b, page_client_for):
    theirs = _notify(team_a.team, 1)
    client = page_client_for(team_b.members["admin"])

    assert_hidden(client, "post", f"/costs/notifications/{theirs.id}/read/", unchanged=[Notification])


def test_mark_read_takes_only_posts(team_a, page_client_for):
    notification = _notify(team_a.team, 1)

    response = page_client_for(team_a.members["viewer"]).get(f"/costs/notifications/{notification.id}/read/")

    assert response.status_code == 405
    notification.refresh_from_db()
    assert notification.read_at is None


def test_the_costs_dashboard_links_the_unread_count(team_a, page_client_for):
    _notify(team_a.team, 1)

    page = page_client_for(team_a.members["viewer"]).get("/costs/").content.decode()

    assert "(1 unread: all notifications)" in page
    assert 'href="/costs/budgets/"' in page
