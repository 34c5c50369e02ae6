from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks
from django.core import mail
from django.utils import timezone

from costs import alerts
from costs.models import (
    BudgetAlert,
    CostRollup,
    DeliveryStatus,
    EmailDelivery,
    Notification,
    WebhookDelivery,
    usd_to_units,
)
from costs.secrets import decrypt
from costs.services import budget_reserve, budget_settle
from costs.tests.conftest import build_call


class Receiver:
    """A real local HTTP server that records webhook posts and answers `statuses` in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([])
    yield server
    server.close()


def spend(world, amount: str) -> None:
    kwargs = {
        "team_id": world.team.id,
        "application_id": world.application.id,
        "api_key_id": None,
        "end_user": "",
        "model": "gpt-4o",
        "metadata": {},
        "at": timezone.now(),
    }
    budget_settle(reservation=budget_reserve(amount=Decimal(amount), **kwargs), actual=Decimal(amount))


def wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.celery_worker
def test_a_crossing_is_delivered_by_the_worker_as_notification_email_and_signed_webhook(
    team_a, make_budget, celery_worker, receiver
):
    # given a budget with an email recipient and a webhook to a real local server
    budget = make_budget(
        team_a.team,
        name="Team monthly",
        amount_usd=Decimal("10"),
        alert_emails=["finance@example.com"],
        webhook_url=receiver.url,
    )

    # when a call's settlement crosses 50 %
    spend(team_a, "5.50")
    wait_for(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists())

    # then one notification, one email and one signed webhook were delivered, and logged
    notification = Notification.objects.get()
    assert notification.title == "Budget 'Team monthly' reached 50% ($5.50000000 of $10.00000000)"
    assert [message.to for message in mail.outbox] == [["finance@example.com"]]
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    secret = decrypt(budget.webhook_secret_encrypted)
    verified = standardwebhooks.Webhook(secret).verify(body, headers)  # Standard Webhooks, timestamped
    assert verified["type"] == "budget.threshold_crossed"
    payload = json.loads(body)
    assert (payload["type"], payload["threshold_percent"], payload["spent_usd"]) == (
        "budget.threshold_crossed",
        50,
        "5.50000000",
    )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.response_status) == (1, 200)


@pytest.mark.django_db
def test_a_failing_webhook_is_retried_and_logged_until_it_succeeds(team_a, make_budget):
    receiver = Receiver([503, 200])
    try:
        make_budget(team_a.team, amount_usd=Decimal("10"), webhook_url=receiver.url)
        with_commit = pytest.importorskip("django.test").TestCase.captureOnCommitCallbacks
        with with_commit(execute=False):
            spend(team_a, "5.00")
        alerts.budget_alert_deliver(alert_id=BudgetAlert.objects.get().id)
        delivery = WebhookDelivery.objects.get()

        with pytest.raises(alerts.DeliveryFailed):
            alerts.webhook_attempt(delivery_id=delivery.id)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.PENDING, 1, "HTTP 503")

        alerts.webhook_attempt(delivery_id=delivery.id)
        alerts.webhook_attempt(delivery_id=delivery.id)  # delivered: not sent again
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_status) == (DeliveryStatus.DELIVERED, 2, 200)
        assert len(receiver.requests) == 2
    finally:
        receiver.close()


@pytest.mark.django_db
def test_a_crossing_fires_once_even_when_delivered_twice(team_a, make_budget):
    make_budget(team_a.team, amount_usd=Decimal("10"))
    spend(team_a, "8.00")  # crosses 50 and 80 at once

    for alert in BudgetAlert.objects.all():
        alerts.budget_alert_deliver(alert_id=alert.id)
        alerts.budget_alert_deliver(alert_id=alert.id)
    for delivery in EmailDelivery.objects.all():  # the email tasks, run twice each
        alerts.email_attempt(delivery_id=delivery.id)
        alerts.email_attempt(delivery_id=delivery.id)

    assert Notification.objects.count() == 2
    assert EmailDelivery.objects.count() == 2
    assert len(mail.outbox) == 2  # the team's manager and admin are the default recipients, one email each time
    assert sorted(mail.outbox[0].to) == sorted([team_a.members["manager"].email, team_a.members["admin"].email])


@pytest.mark.django_db
def test_the_periodic_check_fires_crossings_that_settlement_did_not(team_a, make_budget):
    from costs.models import BudgetPeriod
    from costs.services import budget_update

    budget = make_budget(team_a.team, amount_usd=Decimal("10"), thresholds=[90])
    spend(team_a, "6.00")
    assert not BudgetAlert.objects.exists()

    budget_update(caller=None, budget=budget, thresholds=[50, 90])

    assert alerts.budget_alerts_check() == 1
    assert alerts.budget_alerts_check() == 0
    assert list(BudgetAlert.objects.values_list("threshold", flat=True)) == [50]
    assert BudgetPeriod.objects.get().spent_units == usd_to_units(Decimal("6"))


@pytest.mark.django_db
def test_an_hour_far_above_the_usual_for_that_hour_raises_one_anomaly(team_a, record):
    now = timezone.now().astimezone(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    # the same hour on the previous five days cost $1; the last hour cost $5
    record(
        [build_call(team_a, created_at=last_hour - timedelta(days=day), cost_usd=Decimal("1")) for day in range(1, 6)]
    )
    record([build_call(team_a, created_at=last_hour + timedelta(minutes=5), cost_usd=Decimal("5"))])

    assert alerts.spend_anomalies_check(at=now) == 1
    alerts.spend_anomalies_check(at=now)

    notification = Notification.objects.get()
    assert notification.kind == "spend_anomaly"
    assert "5.0x the usual $1.00000000" in notification.body
    assert CostRollup.objects.filter(dimension="team", granularity="hour").count() == 6


@pytest.mark.django_db
def test_a_normal_hour_raises_no_anomaly(team_a, record):
    now = timezone.now().astimezone(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    record([build_call(team_a, created_at=last_hour - timedelta(days=day), cost_usd=Decimal("1")) for day in range(6)])

    assert alerts.spend_anomalies_check(at=now) == 0
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_simple_calls_to_an_expensive_model_produce_a_cheaper_tier_recommendation(team_a, record):
    from costs.models import Recommendation
    from costs.recommendations import recommendations_refresh

    now = timezone.now()
    record(
        [
            build_call(team_a, created_at=now, input_tokens=800, output_tokens=200, cost_usd=Decimal("0.004"))
            for _ in range(500)
        ]
    )

    assert recommendations_refresh() == 1

    recommendation = Recommendation.objects.get()
    # 500 calls cost $2.00; at gpt-4o-mini's prices 500 * (800 * 0.15 + 200 * 0.60) / 1e6 = $0.12
    assert recommendation.monthly_savings_usd == Decimal("1.88")
    assert recommendation.title == f"Send application {team_a.application.id}'s simple gpt-4o calls to gpt-4o-mini"
