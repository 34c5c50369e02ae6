"""Spend alerts: budget threshold crossings and the hourly spend anomaly.

A crossing is a BudgetAlert row, unique per budget, period and threshold, so it fires once
even when concurrent settlements cross it together. Delivery runs on Celery after commit.

Channels are delivered independently. One transaction writes the in-app Notification and a
delivery row per other channel (EmailDelivery, WebhookDelivery) and touches no network; after
commit each row gets a task of its own, which claims the row, makes one attempt and logs it.
A failed attempt is retried with exponential backoff (RETRY_BASE_SECONDS doubling, at most
MAX_RETRY_DELAY_SECONDS, MAX_ATTEMPTS in all); a permanent refusal (HTTP 4xx, SMTP 5xx) is
not retried. So a mail server that is down delays the email and nothing else. The periodic
safety net (`deliveries_resume`) sends again what lost its task: a crossing without its
notification, a delivery never attempted, a retry long overdue.
"""

from __future__ import annotations

import json
import logging
import smtplib
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx2
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from accounts.selectors import team_manager_emails, team_of_id
from core import egress
from costs import secrets
from costs.models import (
    Budget,
    BudgetAlert,
    BudgetPeriod,
    CostRollup,
    Delivery,
    DeliveryStatus,
    EmailDelivery,
    Notification,
    NotificationKind,
    RollupDimension,
    RollupGranularity,
    WebhookDelivery,
    usd_text,
    usd_to_units,
)
from costs.periods import period_bounds

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10
EMAIL_TIMEOUT_SECONDS = 10  # Django's SMTP backend waits forever by default

# Retries: 10 s, 20 s, 40 s ... capped at an hour; 12 attempts span about 3.5 hours.
RETRY_BASE_SECONDS = 10.0
MAX_RETRY_DELAY_SECONDS = 3600.0
MAX_ATTEMPTS = 12
# An attempt holds its row this long (more than the timeouts above allow one attempt to take).
CLAIM_SECONDS = 120
# A pending delivery whose retry is this far overdue (or that was never attempted) lost its task.
OVERDUE_AFTER = timedelta(minutes=10)
# The safety net looks for crossings without a notification this far back.
UNDELIVERED_ALERT_WINDOW = timedelta(days=7)
RESUME_BATCH = 500

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
    # costs.tasks, the Celery entry points, import this module: the task is looked up when it
    # is enqueued, after every module is loaded.
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
    return team_manager_emails(team_id=team_id)


def _notify(
    *,
    team_id: int,
    kind: str,
    dedupe_key: str,
    title: str,
    body: str,
    link: str,
    budget: Budget | None,
    webhook_payload: dict[str, object] | None = None,
) -> Notification:
    """The in-app notification and, in the same transaction, one delivery row per other
    channel, once per dedupe key; each channel's task is sent after commit."""
    with transaction.atomic():
        notification, created = Notification.objects.get_or_create(
            dedupe_key=dedupe_key,
            defaults={"team_id": team_id, "kind": kind, "title": title, "body": body, "link": link},
        )
        if not created:
            return notification  # its channels were planned with it; the safety net resumes them
        recipients = _recipients(team_id, budget)
        if recipients:
            email = EmailDelivery.objects.create(
                notification=notification, recipients=recipients, subject=f"[LLMOps] {title}", body=f"{body}\n\n{link}"
            )
            transaction.on_commit(lambda: _send_task("email", email.id))
        if budget is not None and budget.webhook_url and webhook_payload is not None:
            webhook = WebhookDelivery.objects.create(
                budget=budget,
                notification=notification,
                url=budget.webhook_url,
                body=json.dumps(webhook_payload, sort_keys=True),
            )
            transaction.on_commit(lambda: _send_task("webhook", webhook.id))
    return notification


def _send_task(channel: str, delivery_id: int) -> None:
    # costs.tasks, the Celery entry points, import this module: the task is looked up when it
    # is enqueued, after every module is loaded.
    from costs.tasks import email_deliver, webhook_deliver

    (email_deliver if channel == "email" else webhook_deliver).delay(delivery_id)


def budget_alert_deliver(*, alert_id: int) -> None:
    """The notification of one crossing, with its email and (if configured) signed webhook. Idempotent."""
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
    payload: dict[str, object] = {
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
    _notify(
        team_id=budget.team_id,
        kind=NotificationKind.BUDGET_THRESHOLD,
        dedupe_key=f"budget-alert:{alert.id}",
        title=title,
        body=body,
        link=f"/costs/?team={budget.team_id}#budget-{budget.id}",
        budget=budget,
        webhook_payload=payload,
    )


class DeliveryFailed(Exception):
    """An attempt failed in a way worth retrying; the task retries after `retry_in` seconds."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def retry_delay_seconds(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt."""
    return float(min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), MAX_RETRY_DELAY_SECONDS))


def _claim(model: type[Delivery], delivery_id: int) -> Delivery | None:
    """The pending row, held for one attempt; None when it is delivered, failed for good, or
    another task's attempt holds it (a second task sent by the safety net does nothing)."""
    now = timezone.now()
    held = (
        model._default_manager.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    return model._default_manager.filter(pk=delivery_id).first() if held else None


def _record_attempt(delivery: Delivery, *, error: str, is_retryable: bool) -> None:
    """Log one attempt on the row (and release it); raise DeliveryFailed when a retry is due."""
    now = timezone.now()
    delivery.attempts += 1
    delivery.claimed_until = None
    delivery.next_attempt_at = None
    retry_in = 0.0
    if not error:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = ""
    else:
        delivery.last_error = error[:2000]
        if is_retryable and delivery.attempts < MAX_ATTEMPTS:
            retry_in = retry_delay_seconds(delivery.attempts)
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
        else:
            delivery.status = DeliveryStatus.FAILED
    delivery.save()
    if delivery.status == DeliveryStatus.FAILED:
        logger.warning(
            "notification delivery failed for good",
            extra={"delivery": f"{type(delivery).__name__}:{delivery.pk}", "attempts": delivery.attempts},
        )
    if delivery.next_attempt_at is not None:
        raise DeliveryFailed(error, retry_in=retry_in)


def email_attempt(*, delivery_id: int) -> None:
    """Send the email once and log the attempt. Raises DeliveryFailed to be retried."""
    delivery = _claim(EmailDelivery, delivery_id)
    if delivery is None:
        return
    assert isinstance(delivery, EmailDelivery)
    error, is_retryable = "", False
    try:
        connection = get_connection(fail_silently=False, timeout=EMAIL_TIMEOUT_SECONDS)
        EmailMessage(
            subject=delivery.subject,
            body=delivery.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=list(delivery.recipients),
            connection=connection,
        ).send()
    except smtplib.SMTPRecipientsRefused as failure:
        codes = [code for code, _ in failure.recipients.values()]
        error = f"SMTP recipients refused: {', '.join(str(code) for code in codes)}"
        is_retryable = any(code < 500 for code in codes)
    except smtplib.SMTPResponseException as failure:
        error = f"SMTP {failure.smtp_code}: {failure.smtp_error!r}"
        is_retryable = failure.smtp_code < 500
    except (smtplib.SMTPException, OSError) as failure:
        error = f"{type(failure).__name__}: {failure}"
        is_retryable = True
    _record_attempt(delivery, error=error, is_retryable=is_retryable)


def webhook_attempt(*, delivery_id: int) -> None:
    """POST the body once, signed (Standard Webhooks, timestamped at this attempt), and log
    the attempt. Raises DeliveryFailed to be retried. The request passes the egress policy
    (the URL was checked when saved; DNS may have changed since) and follows no redirect."""
    delivery = _claim(WebhookDelivery, delivery_id)
    if delivery is None:
        return
    assert isinstance(delivery, WebhookDelivery)
    body = delivery.body.encode()
    secret = secrets.decrypt(delivery.budget.webhook_secret_encrypted)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "llmops-control-plane/1",
        # The same id on every attempt: receivers drop a message id they have seen.
        **secrets.signature_headers(secret, message_id=f"msg_{delivery.id}", body=body, at=timezone.now()),
    }
    error, is_retryable = "", False
    try:
        with egress.egress_client(timeout=WEBHOOK_TIMEOUT_SECONDS) as client:
            response = client.post(delivery.url, content=body, headers=headers)
        delivery.response_status = response.status_code
        if response.is_redirect:
            error = f"HTTP {response.status_code}: redirects are not followed; give the final URL"
        elif not response.is_success:
            error = f"HTTP {response.status_code}"
            is_retryable = response.status_code >= 500 or response.status_code == 429
    except httpx2.ConnectError as failure:
        error = f"{type(failure).__name__}: {failure}"
        # The egress policy's refusal stands until the URL or the allowlist changes.
        is_retryable = "egress policy" not in str(failure)
    except httpx2.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}"
        is_retryable = True
    _record_attempt(delivery, error=error, is_retryable=is_retryable)


def deliveries_resume(*, at: datetime | None = None) -> int:
    """Safety net (periodic): send again what lost its task. A crossing older than
    OVERDUE_AFTER without its notification is delivered; a pending delivery never attempted,
    or whose retry is OVERDUE_AFTER late, gets a new task (which does nothing if another
    attempt holds the row). Returns how many tasks were sent."""
    # costs.tasks, the Celery entry points, import this module: the task is looked up when it
    # is enqueued, after every module is loaded.
    from costs.tasks import budget_alert_deliver as budget_alert_task

    now = at or timezone.now()
    cutoff = now - OVERDUE_AFTER
    notified = Notification.objects.filter(
        dedupe_key=Concat(models.Value("budget-alert:"), Cast(OuterRef("pk"), models.CharField()))
    )
    alert_ids = list(
        BudgetAlert.objects.filter(created_at__lte=cutoff, created_at__gte=now - UNDELIVERED_ALERT_WINDOW)
        .exclude(Exists(notified))
        .values_list("pk", flat=True)[:RESUME_BATCH]
    )
    for alert_id in alert_ids:
        budget_alert_task.delay(alert_id)
    overdue = (
        Q(status=DeliveryStatus.PENDING)
        & (Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True, created_at__lte=cutoff))
        & (Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
    )
    sent = len(alert_ids)
    for channel, model in (("email", EmailDelivery), ("webhook", WebhookDelivery)):
        for delivery_id in model.objects.filter(overdue).values_list("pk", flat=True)[:RESUME_BATCH]:
            _send_task(channel, delivery_id)
            sent += 1
    return sent


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
        team = team_of_id(team_id=team_id)
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
        _notify(
            team_id=team_id,
            kind=NotificationKind.SPEND_ANOMALY,
            dedupe_key=f"spend-anomaly:{team_id}:{hour:%Y%m%d%H}",
            title=title,
            body=body,
            link=link,
            budget=None,
        )
        fired += 1
    return fired
