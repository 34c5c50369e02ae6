"""Celery entry points for costs: take ids, call a function, stay idempotent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from costs import alerts
from costs.budgets import budget_reservations_reclaim as reclaim
from costs.recommendations import recommendations_refresh as refresh


@shared_task(acks_late=True, ignore_result=True)
def budget_alert_deliver(alert_id: int) -> None:
    alerts.budget_alert_deliver(alert_id=alert_id)


# One task per channel of a notification. The attempt count on the row decides the last
# attempt and the backoff (costs.alerts), so Celery's own retry limit is off.
@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None, time_limit=90, soft_time_limit=80)
def email_deliver(self: Any, delivery_id: int) -> None:
    try:
        alerts.email_attempt(delivery_id=delivery_id)
    except alerts.DeliveryFailed as failure:
        raise self.retry(exc=failure, countdown=failure.retry_in) from failure


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None, time_limit=90, soft_time_limit=80)
def webhook_deliver(self: Any, delivery_id: int) -> None:
    try:
        alerts.webhook_attempt(delivery_id=delivery_id)
    except alerts.DeliveryFailed as failure:
        raise self.retry(exc=failure, countdown=failure.retry_in) from failure


@shared_task(acks_late=True, ignore_result=True)
def budget_alerts_check() -> int:
    """The periodic safety net: crossings settlement did not fire, and deliveries that lost their task."""
    fired = alerts.budget_alerts_check()
    alerts.deliveries_resume()
    return fired


@shared_task(acks_late=True, ignore_result=True)
def spend_anomalies_check() -> int:
    return alerts.spend_anomalies_check()


@shared_task(acks_late=True, ignore_result=True, time_limit=900, soft_time_limit=840)
def recommendations_refresh() -> int:
    return refresh()


@shared_task(acks_late=True, ignore_result=True, time_limit=300, soft_time_limit=270)
def budget_reservations_reclaim(older_than_seconds: float | None = None) -> dict[str, int]:
    """Settle or release reservations nothing settled (see costs.budgets); idempotent."""
    older_than = None if older_than_seconds is None else timedelta(seconds=older_than_seconds)
    result = reclaim(older_than=older_than)
    return {"settled": result.settled, "released": result.released, "deleted": result.deleted}
