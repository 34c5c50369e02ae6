"""Spend alerts: budget threshold crossings and the hourly spend anomaly.

A crossing is a BudgetAlert row, unique per budget, period and threshold, so it fires once
even when concurrent settlements cross it together. Delivery runs on Celery after commit:
an in-app Notification, an email, and a signed webhook with a delivery log.
"""

from __future__ import annotations

import json
import logging
import statistics
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership, Role, Team
from costs import secrets
from costs.budgets import period_bounds
from costs.models import (
    Budget,
    BudgetAlert,
    BudgetPeriod,
    CostRollup,
    DeliveryStatus,
    Notification,
    NotificationKind,
    RollupDimension,
    RollupGranularity,
    WebhookDelivery,
    usd_text,
    usd_to_units,
)

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Controlplane-Signature-256"

# Anomaly rule: the last full hour's spend is anomalous when it is at least ANOMALY_FACTOR
# times the median of the same hour of day over the previous ANOMALY_DAYS days (at least
# ANOMALY_MIN_HISTORY of them with spend), and at least ANOMALY_MIN_USD above that median.
ANOMALY_FACTOR = 3
ANOMALY_DAYS = 7
ANOMALY_MIN_HISTORY = 3
ANOMALY_MIN_USD = Decimal("1.00")


def alert_fire(*, budget_id: int, period_start: datetime, threshold: int, spent_units: int, limit_units: int) -> None:
    """Record a threshold crossing (once per budget, period and threshold) and deliver it after commit."""
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                budget_id=budget_id,
                period_start=period_start,
                threshold=threshold,
                spent_units=spent_units,
                limit_units=limit_units,
            )
    except IntegrityError:
        return  # already fired in this period
    from costs.tasks import budget_alert_deliver

    alert_id = alert.id
    transaction.on_commit(lambda: budget_alert_deliver.delay(alert_id))


def budget_alerts_check(*, at: datetime | None = None) -> int:
    """Safety net (periodic): fire crossings of current periods that settlement did not fire,
    for example after a threshold was lowered. Returns how many fired."""
    now = at or timezone.now()
    fired = 0
    periods = BudgetPeriod.objects.filter(budget__is_enabled=True, period_start__lte=now).exclude(period_end__lte=now)
    for period in periods.select_related("budget"):
        existing = set(
            BudgetAlert.objects.filter(budget_id=period.budget_id, period_start=period.period_start).values_list(
                "threshold", flat=True
            )
        )
        for threshold in period.budget.thresholds:
            if threshold not in existing and period.spent_units * 100 >= threshold * period.limit_units:
                alert_fire(
                    budget_id=period.budget_id,
                    period_start=period.period_start,
                    threshold=threshold,
                    spent_units=period.spent_units,
                    limit_units=period.limit_units,
                )
                fired += 1
    return fired


def _recipients(team_id: int, budget: Budget | None) -> list[str]:
    if budget is not None and budget.alert_emails:
        return list(budget.alert_emails)
    emails = Membership.objects.filter(team_id=team_id, role__in=[Role.MANAGER, Role.ADMIN]).values_list(
        "user__email", flat=True
    )
    return sorted({email for email in emails if email})


def _notify(
    *, team_id: int, kind: str, dedupe_key: str, title: str, body: str, link: str, budget: Budget | None
) -> Notification | None:
    """Create the in-app notification and send the email, once per dedupe key."""
    notification, created = Notification.objects.get_or_create(
        dedupe_key=dedupe_key, defaults={"team_id": team_id, "kind": kind, "title": title, "body": body, "link": link}
    )
    if not created:
        return notification
    recipients = _recipients(team_id, budget)
    if recipients:
        send_mail(
            subject=f"[LLMOps] {title}",
            message=f"{body}\n\n{link}",
            from_email=getattr(settings, "DEFAULT_FROM_EMAIL", None),
            recipient_list=recipients,
            fail_silently=False,
        )
    return notification


def budget_alert_deliver(*, alert_id: int) -> None:
    """Notification, email and (if configured) the signed webhook of one crossing. Idempotent."""
    alert = BudgetAlert.objects.select_related("budget", "budget__team").filter(pk=alert_id).first()
    if alert is None:
        return
    budget = alert.budget
    time_zone = budget.team.time_zone
    _, period_end = period_bounds(period=budget.period, at=alert.period_start, time_zone=time_zone)
    resets = (
        f"It resets at {period_end.astimezone(ZoneInfo(time_zone)):%Y-%m-%d %H:%M} ({time_zone})."
        if period_end
        else "It is a total budget."
    )
    action = (
        "Requests that would cross it are refused."
        if budget.action == "block"
        else (f"Requests past the limit are sent to {budget.downgrade_model}.")
    )
    spent, limit = usd_text(alert.spent_units), usd_text(alert.limit_units)
    title = f"Budget '{budget.name}' reached {alert.threshold}% (${spent} of ${limit})"
    body = (
        f"Budget '{budget.name}' ({budget.scope} {budget.scope_value}, {budget.period}) "
        f"has spent ${spent} of its ${limit} limit. {resets} {action}"
    )
    link = f"/costs/?team={budget.team_id}#budget-{budget.id}"
    with transaction.atomic():
        notification = _notify(
            team_id=budget.team_id,
            kind=NotificationKind.BUDGET_THRESHOLD,
            dedupe_key=f"budget-alert:{alert.id}",
            title=title,
            body=body,
            link=link,
            budget=budget,
        )
        if notification is None or not budget.webhook_url:
            return
        payload = {
            "type": "budget.threshold_crossed",
            "budget": {
                "id": budget.id,
                "name": budget.name,
                "scope": budget.scope,
                "scope_value": budget.scope_value,
                "period": budget.period,
            },
            "team_id": budget.team_id,
            "threshold_percent": alert.threshold,
            "spent_usd": str(spent),
            "limit_usd": str(limit),
            "period_start": alert.period_start.isoformat(),
            "period_end": period_end.isoformat() if period_end else None,
            "created_at": alert.created_at.isoformat(),
        }
        delivery, created = WebhookDelivery.objects.get_or_create(
            budget=budget,
            notification=notification,
            defaults={"url": budget.webhook_url, "body": json.dumps(payload, sort_keys=True)},
        )
        if created:
            from costs.tasks import webhook_deliver

            delivery_id = delivery.id
            transaction.on_commit(lambda: webhook_deliver.delay(delivery_id))


class WebhookFailed(Exception):
    """A delivery attempt failed in a way worth retrying (network error or 5xx/429)."""


def webhook_attempt(*, delivery_id: int, is_last_attempt: bool) -> None:
    """POST the body once, signed, and log the attempt. Raises WebhookFailed to be retried."""
    delivery = WebhookDelivery.objects.select_related("budget").filter(pk=delivery_id).first()
    if delivery is None or delivery.status == DeliveryStatus.DELIVERED:
        return
    body = delivery.body.encode()
    secret = secrets.decrypt(delivery.budget.webhook_secret_encrypted)
    request = urllib.request.Request(  # noqa: S310 - the URL is a validated http(s) URLField
        delivery.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "llmops-control-plane/1",
            SIGNATURE_HEADER: secrets.signature(secret, body),
            "X-Controlplane-Delivery": str(delivery.id),
        },
    )
    delivery.attempts += 1
    error = ""
    retryable = False
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310 - see above
            delivery.response_status = response.status
    except urllib.error.HTTPError as failure:
        delivery.response_status = failure.code
        error = f"HTTP {failure.code}"
        retryable = failure.code >= 500 or failure.code == 429
    except (urllib.error.URLError, TimeoutError, OSError) as failure:
        error = f"{type(failure).__name__}: {failure}"
        retryable = True
    if not error:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.last_error = ""
    else:
        delivery.last_error = error
        delivery.status = DeliveryStatus.FAILED if (is_last_attempt or not retryable) else DeliveryStatus.PENDING
    delivery.save()
    if error and retryable and not is_last_attempt:
        raise WebhookFailed(error)


def spend_anomalies_check(*, at: datetime | None = None) -> int:
    """Notify teams whose last full hour's spend is far above the same hour's usual. Returns how many."""
    now = (at or timezone.now()).astimezone(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    history_hours = [hour - timedelta(days=day) for day in range(1, ANOMALY_DAYS + 1)]
    rows = CostRollup.objects.filter(
        granularity=RollupGranularity.HOUR,
        dimension=RollupDimension.TEAM,
        bucket_start__in=[hour, *history_hours],
    ).values_list("team_id", "bucket_start", "cost_units")
    by_team: dict[int, dict[datetime, int]] = {}
    for team_id, bucket, cost in rows:
        by_team.setdefault(team_id, {})[bucket.astimezone(UTC)] = cost
    fired = 0
    for team_id, buckets in by_team.items():
        current = buckets.get(hour, 0)
        history = [buckets[past] for past in history_hours if buckets.get(past)]
        if current == 0 or len(history) < ANOMALY_MIN_HISTORY:
            continue
        usual = int(statistics.median(history))
        if current < ANOMALY_FACTOR * usual or current - usual < usd_to_units(ANOMALY_MIN_USD):
            continue
        team = Team.objects.filter(pk=team_id).first()
        if team is None:
            continue
        local = hour.astimezone(ZoneInfo(team.time_zone))
        title = f"Unusual spend: ${usd_text(current)} in the hour from {local:%Y-%m-%d %H:%M}"
        body = (
            f"Team {team.name} spent ${usd_text(current)} in the hour from {local:%H:%M} ({team.time_zone}), "
            f"{Decimal(current) / Decimal(usual):.1f}x the usual ${usd_text(usual)} for that hour "
            f"(median of the same hour on the previous {len(history)} days with spend). "
            f"The rule fires at {ANOMALY_FACTOR}x the median and at least ${ANOMALY_MIN_USD} above it."
        )
        link = f"/costs/?team={team_id}&interval=hour"
        notification = _notify(
            team_id=team_id,
            kind=NotificationKind.SPEND_ANOMALY,
            dedupe_key=f"spend-anomaly:{team_id}:{hour:%Y%m%d%H}",
            title=title,
            body=body,
            link=link,
            budget=None,
        )
        fired += notification is not None
    return fired
