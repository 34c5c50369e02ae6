"""Celery entry points for costs: take ids, call a function, stay idempotent."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from costs import alerts

WEBHOOK_MAX_RETRIES = 5


@shared_task(acks_late=True, ignore_result=True)
def budget_alert_deliver(alert_id: int) -> None:
    alerts.budget_alert_deliver(alert_id=alert_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=WEBHOOK_MAX_RETRIES)
def webhook_deliver(self: Any, delivery_id: int) -> None:
    try:
        alerts.webhook_attempt(delivery_id=delivery_id, is_last_attempt=self.request.retries >= WEBHOOK_MAX_RETRIES)
    except alerts.WebhookFailed as failure:
        # Exponential backoff: 10 s, 20 s, 40 s, 80 s, 160 s.
        raise self.retry(exc=failure, countdown=10 * 2**self.request.retries) from failure


@shared_task(acks_late=True, ignore_result=True)
def budget_alerts_check() -> int:
    return alerts.budget_alerts_check()


@shared_task(acks_late=True, ignore_result=True)
def spend_anomalies_check() -> int:
    return alerts.spend_anomalies_check()


@shared_task(acks_late=True, ignore_result=True, time_limit=900, soft_time_limit=840)
def recommendations_refresh() -> int:
    from costs.recommendations import recommendations_refresh as refresh

    return refresh()


@shared_task(acks_late=True, ignore_result=True, time_limit=300, soft_time_limit=270)
def budget_reservations_reclaim(older_than_seconds: float | None = None) -> dict[str, int]:
    """Settle or release reservations nothing settled (see costs.budgets); idempotent."""
    from datetime import timedelta

    from costs.budgets import budget_reservations_reclaim as reclaim

    older_than = None if older_than_seconds is None else timedelta(seconds=older_than_seconds)
    result = reclaim(older_than=older_than)
    return {"settled": result.settled, "released": result.released, "deleted": result.deleted}
