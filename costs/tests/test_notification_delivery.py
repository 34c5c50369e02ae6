"""Each channel of a notification (in-app, email, webhook) is delivered on its own: a mail
server that is down loses neither the notification nor the webhook, and the email follows
when the server is back. The navigation shows the unread count."""

from __future__ import annotations

import email as email_parser
import socket
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from email import policy as email_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db.models import F
from django.utils import timezone

from costs import alerts
from costs.models import BudgetAlert, DeliveryStatus, EmailDelivery, Notification, NotificationKind, WebhookDelivery
from costs.tests.factories import NotificationFactory
from costs.tests.test_alerts import Receiver, spend, wait_for


class Mailbox:
    """A real SMTP server's handler (aiosmtpd): keeps every message it accepts."""

    def __init__(self, *, refuse_with: str = "") -> None:
        self.messages: list[tuple[list[str], str]] = []
        self.refuse_with = refuse_with

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_with:
            return self.refuse_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A loopback port nobody listens on (yet): connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_settings(settings: Any) -> int:
    """Mail goes over real SMTP to a loopback port where no server listens yet."""
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return port


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([])
    yield server
    server.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The backoff's first wait, shortened so the test does not sit through 10 s (0.2, 0.4, 0.8 ...).
    monkeypatch.setattr(alerts, "RETRY_BASE_SECONDS", 0.2)


@pytest.mark.celery_worker
def test_a_mail_server_that_is_down_loses_neither_the_notification_nor_the_webhook_and_the_email_follows(
    team_a, make_budget, celery_worker, receiver, smtp_settings, fast_retries
):
    # given a budget alerting an email address and a webhook, and no mail server listening
    make_budget(
        team_a.team,
        name="Team monthly",
        amount_usd=Decimal("10"),
        alert_emails=["finance@example.com"],
        webhook_url=receiver.url,
    )

    # when a call's settlement crosses 50 % and the worker delivers
    spend(team_a, "5.50")
    wait_for(lambda: EmailDelivery.objects.filter(attempts__gte=1).exists())
    wait_for(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists())

    # then the in-app notification and the webhook are delivered, and the email waits for a retry
    notification = Notification.objects.get()
    assert notification.title == "Budget 'Team monthly' reached 50% ($5.50000000 of $10.00000000)"
    assert notification.read_at is None
    assert len(receiver.requests) == 1
    email = EmailDelivery.objects.get()
    assert (email.notification_id, email.status, email.recipients) == (
        notification.id,
        DeliveryStatus.PENDING,
        ["finance@example.com"],
    )
    assert email.last_error.startswith("ConnectionRefusedError")
    assert email.next_attempt_at is not None

    # when the mail server comes up on that port
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_settings)
    controller.start()
    try:
        wait_for(lambda: EmailDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), seconds=60)
    finally:
        controller.stop()

    # then a retry delivered the email, once, and logged it
    email.refresh_from_db()
    assert (email.status, email.last_error, email.next_attempt_at) == (DeliveryStatus.DELIVERED, "", None)
    assert email.attempts >= 2
    assert len(mailbox.messages) == 1
    recipients, content = mailbox.messages[0]
    assert recipients == ["finance@example.com"]
    message = email_parser.message_from_string(content, policy=email_policy.default)
    assert message["Subject"] == "[LLMOps] Budget 'Team monthly' reached 50% ($5.50000000 of $10.00000000)"
    assert Notification.objects.count() == 1
    assert WebhookDelivery.objects.get().attempts == 1


@pytest.mark.django_db
def test_a_recipient_the_mail_server_refuses_for_good_is_not_retried(team_a, make_budget, smtp_settings):
    make_budget(team_a.team, amount_usd=Decimal("10"), alert_emails=["nobody@example.com"])
    spend(team_a, "5.00")
    alerts.budget_alert_deliver(alert_id=BudgetAlert.objects.get().id)
    mailbox = Mailbox(refuse_with="550 5.1.1 No such user")
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_settings)
    controller.start()
    try:
        alerts.email_attempt(delivery_id=EmailDelivery.objects.get().id)  # no DeliveryFailed: no retry
    finally:
        controller.stop()

    email = EmailDelivery.objects.get()
    assert (email.status, email.attempts, email.last_error) == (
        DeliveryStatus.FAILED,
        1,
        "SMTP recipients refused: 550",
    )
    assert email.next_attempt_at is None
    assert mailbox.messages == []
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_a_retryable_failure_waits_longer_each_time_and_stops_after_the_last_attempt(
    team_a, make_budget, smtp_settings
):
    make_budget(team_a.team, amount_usd=Decimal("10"), alert_emails=["finance@example.com"])
    spend(team_a, "5.00")
    alerts.budget_alert_deliver(alert_id=BudgetAlert.objects.get().id)
    delivery_id = EmailDelivery.objects.get().id

    waits = []
    for _ in range(alerts.MAX_ATTEMPTS - 1):
        with pytest.raises(alerts.DeliveryFailed) as failure:
            alerts.email_attempt(delivery_id=delivery_id)
        waits.append(failure.value.retry_in)
    alerts.email_attempt(delivery_id=delivery_id)  # the last attempt: failed for good, nothing raised
    alerts.email_attempt(delivery_id=delivery_id)  # a stray task afterwards does nothing

    assert waits == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 3600.0, 3600.0]
    email = EmailDelivery.objects.get()
    assert (email.status, email.attempts, email.next_attempt_at) == (DeliveryStatus.FAILED, alerts.MAX_ATTEMPTS, None)


@pytest.mark.django_db
def test_an_attempt_in_flight_holds_its_delivery(team_a, make_budget, smtp_settings):
    make_budget(team_a.team, amount_usd=Decimal("10"), alert_emails=["finance@example.com"])
    spend(team_a, "5.00")
    alerts.budget_alert_deliver(alert_id=BudgetAlert.objects.get().id)
    EmailDelivery.objects.update(claimed_until=timezone.now() + timedelta(seconds=60))  # another task's attempt

    alerts.email_attempt(delivery_id=EmailDelivery.objects.get().id)

    assert EmailDelivery.objects.get().attempts == 0


@pytest.mark.celery_worker
def test_the_safety_net_delivers_a_crossing_whose_notification_was_lost_and_an_overdue_email(
    team_a, make_budget, celery_worker, smtp_settings
):
    # given a crossing whose delivery task was lost (no notification), older than the grace period
    budget = make_budget(team_a.team, name="Ops", amount_usd=Decimal("10"), alert_emails=["finance@example.com"])
    alert = BudgetAlert.objects.create(
        budget=budget, period_start=timezone.now(), threshold=80, spent_units=8, limit_units=10
    )
    BudgetAlert.objects.filter(pk=alert.pk).update(created_at=F("created_at") - alerts.OVERDUE_AFTER)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_settings)
    controller.start()
    try:
        # when the periodic safety net runs
        assert alerts.deliveries_resume() == 1
        wait_for(lambda: EmailDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists())

        # then the notification exists and its email went out once
        assert Notification.objects.get().dedupe_key == f"budget-alert:{alert.id}"
        assert len(mailbox.messages) == 1

        # and an email whose retry is long overdue is sent again (a delivered one is left alone)
        second = Notification.objects.create(
            team=team_a.team, kind=NotificationKind.SPEND_ANOMALY, title="t", body="b", dedupe_key="test-overdue"
        )
        EmailDelivery.objects.create(notification=second, recipients=["ops@example.com"], subject="Overdue", body="b")
        EmailDelivery.objects.filter(notification=second).update(created_at=F("created_at") - alerts.OVERDUE_AFTER)
        assert alerts.deliveries_resume() == 1
        wait_for(lambda: EmailDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2)
    finally:
        controller.stop()

    assert [recipients for recipients, _ in mailbox.messages] == [["finance@example.com"], ["ops@example.com"]]
    assert alerts.deliveries_resume() == 0


# The navigation's unread count -------------------------------------------------------------


def _notification(team: Any, number: int, *, is_read: bool = False) -> Notification:
    return NotificationFactory.create(team=team, title=f"{team.name} alert {number}", is_read=is_read)


NAV_BADGE = '<span class="badge" id="nav-unread-count" aria-label="{count} unread">{count}</span>'


@pytest.mark.django_db
def test_the_navigation_shows_the_unread_count_and_it_decreases_after_mark_read(team_a, team_b, page_client_for):
    first, _, _ = (_notification(team_a.team, number) for number in range(3))
    _notification(team_a.team, 9, is_read=True)
    _notification(team_b.team, 1)  # another team's: not counted
    client = page_client_for(team_a.members["viewer"])

    before = client.get("/").content.decode()
    client.post(f"/costs/notifications/{first.id}/read/")
    after = client.get("/prompts/").content.decode()

    assert NAV_BADGE.format(count=3) in before
    assert NAV_BADGE.format(count=2) in after


@pytest.mark.django_db
def test_the_navigation_count_is_one_query_and_absent_when_nothing_is_unread(
    team_a, page_client_for, django_assert_num_queries
):
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from controlplane.context_processors import navigation

    _notification(team_a.team, 1, is_read=True)
    request = RequestFactory().get("/")
    request.user = team_a.members["viewer"]
    context = navigation(request)

    with django_assert_num_queries(1):
        count = context["nav_unread_notifications"]()

    assert count == 0
    page = page_client_for(team_a.members["viewer"]).get("/").content.decode()
    assert 'id="nav-notifications"' in page
    assert "nav-unread-count" not in page
    assert "nav_unread_notifications" not in navigation(RequestFactory().get("/login/"))  # no user: no query
    assert "nav-unread-count" not in render_to_string("base.html", {})
