"""Cost rows for tests, and budget reservations made as the gateway makes them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from accounts.tests.factories import TeamFactory
from costs.models import Notification
from costs.services import Reservation, budget_reserve
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


def reservation_for(
    world: Any,
    amount: str | Decimal,
    *,
    at: datetime | None = None,
    model: str = "gpt-4o",
    end_user: str = "",
    metadata: dict[str, Any] | None = None,
    api_key_id: int | None = None,
    **options: Any,
) -> Reservation:
    """A budget reservation for a call of `world`'s application, as the gateway makes one (at now
    unless `at` is given)."""
    return budget_reserve(
        team_id=world.team.id,
        application_id=world.application.id,
        api_key_id=api_key_id,
        end_user=end_user,
        model=model,
        metadata=metadata or {},
        amount=Decimal(amount),
        at=at or timezone.now(),
        **options,
    )
