"""Cost rows for tests."""

from __future__ import annotations

import factory
from django.utils import timezone

from accounts.tests.factories import TeamFactory
from costs.models import Notification
from costs.types import NotificationKind


class NotificationFactory(factory.django.DjangoModelFactory[Notification]):
    """A budget notification of a team, unread unless `is_read=True`."""

    class Meta:
        model = Notification

    class Params:
        is_read = False

    team = factory.SubFactory(TeamFactory)
    kind = NotificationKind.BUDGET_THRESHOLD
    title = factory.Sequence(lambda n: f"alert {n}")
    body = "Budget crossed 80%."
    dedupe_key = factory.Sequence(lambda n: f"factory-notification-{n}")
    read_at = factory.LazyAttribute(lambda notification: timezone.now() if notification.is_read else None)
