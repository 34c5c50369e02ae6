"""Budget webhooks pass the egress policy (on save and on delivery), follow no redirect, and
are signed the Standard Webhooks way: timestamped, so a replayed delivery is refused."""

from __future__ import annotations

import base64
import json
import socket
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks
from django.utils import timezone

from core.testing import assert_openai_error, assert_refused
from costs import alerts, secrets
from costs.models import Budget, DeliveryStatus, Notification, WebhookDelivery
from costs.tests.test_alerts import Receiver

pytestmark = pytest.mark.django_db

BASE = "/api/v1/budgets/"
INTERNAL_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/hook", "10.0.0.1 is a private-network address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:9000/hook", "127.0.0.1 is a loopback address"),
    ("http://2130706433/hook", ""),  # decimal 127.0.0.1: refused as a URL or as an address
]


def budget_body(world: Any, **fields: Any) -> dict[str, Any]:
    return {
        "team": world.team.id,
        "name": "Team monthly",
        "scope": "team",
        "period": "monthly",
        "amount_usd": "25",
    } | fields


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
def test_a_budget_webhook_to_an_internal_address_is_a_400_naming_it(
    settings: Any, team_a, client_for, url: str, reason: str
) -> None:
    settings.EGRESS_ALLOWLIST = ""
    manager = client_for(team_a.members["manager"])

    response = assert_refused(
        manager, "post", BASE, status=400, unchanged=[Budget], data=budget_body(team_a, webhook_url=url)
    )

    assert_openai_error(response, 400, param="webhook_url")
    assert reason in response.json()["error"]["message"]


def test_changing_a_webhook_to_an_internal_address_is_refused(settings: Any, team_a, client_for, make_budget) -> None:
    budget = make_budget(team_a.team, webhook_url="https://8.8.8.8/hook")
    settings.EGRESS_ALLOWLIST = ""
    manager = client_for(team_a.members["manager"])

    response = assert_refused(
        manager,
        "patch",
        f"{BASE}{budget.id}/",
        status=400,
        unchanged=[Budget],
        data={"webhook_url": "http://169.254.169.254/latest/meta-data/"},
    )

    assert_openai_error(response, 400, param="webhook_url")


def _pending_delivery(team_a: Any, make_budget: Any, url: str) -> WebhookDelivery:
    budget = make_budget(team_a.team, amount_usd=Decimal("10"), webhook_url=url)
    notification = Notification.objects.create(team_id=team_a.team.id, kind="budget_threshold", title="t", body="b")
    return WebhookDelivery.objects.create(
        budget=budget, notification=notification, url=url, body=json.dumps({"type": "budget.threshold_crossed"})
    )


def test_a_webhook_is_signed_with_standard_webhooks_and_a_replay_is_refused(team_a, make_budget) -> None:
    receiver = Receiver([])
    try:
        delivery = _pending_delivery(team_a, make_budget, receiver.url)
        alerts.webhook_attempt(delivery_id=delivery.id)
    finally:
        receiver.close()

    [(headers, body)] = receiver.requests
    secret = secrets.decrypt(delivery.budget.webhook_secret_encrypted)
    webhook = standardwebhooks.Webhook(secret)
    assert webhook.verify(body, headers) == {"type": "budget.threshold_crossed"}
    assert headers["webhook-id"] == f"msg_{delivery.id}"
    # the same request captured and sent again later: its timestamp is too old
    replayed = headers | secrets.signature_headers(
        secret, message_id=headers["webhook-id"], body=body, at=timezone.now() - timedelta(seconds=600)
    )
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="too old"):
        webhook.verify(body, replayed)
    # a fresh timestamp on the old signature does not verify either
    with pytest.raises(standardwebhooks.WebhookVerificationError, match="No matching signature"):
        webhook.verify(body, replayed | {"webhook-timestamp": headers["webhook-timestamp"]})


def test_new_secrets_are_standard_webhooks_secrets() -> None:
    secret = secrets.webhook_secret_new()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_a_webhook_whose_name_now_resolves_inside_is_not_delivered(
    settings: Any, team_a, make_budget, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver([])
    try:
        url = receiver.url.replace("127.0.0.1", "hooks.example")
        delivery = _pending_delivery(team_a, make_budget, url)  # saved while it did not resolve
        settings.EGRESS_ALLOWLIST = ""
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "hooks.example":  # DNS outside the project, pointed inside since
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        alerts.webhook_attempt(delivery_id=delivery.id)
    finally:
        receiver.close()

    delivery.refresh_from_db()
    assert receiver.requests == []
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)  # a refusal is not retried
    assert "egress policy" in delivery.last_error
    assert "127.0.0.1 is a loopback address" in delivery.last_error


def test_a_webhook_redirect_is_not_followed(team_a, make_budget) -> None:
    target = Receiver([])
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(307)
            self.send_header("Location", target.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    redirecting = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=redirecting.serve_forever, daemon=True).start()
    try:
        delivery = _pending_delivery(team_a, make_budget, f"http://127.0.0.1:{redirecting.server_address[1]}/hook")
        alerts.webhook_attempt(delivery_id=delivery.id)
    finally:
        redirecting.shutdown()
        redirecting.server_close()
        target.close()

    delivery.refresh_from_db()
    assert hits == ["/hook"]
    assert target.requests == []
    assert (delivery.status, delivery.response_status) == (DeliveryStatus.FAILED, 307)
    assert delivery.last_error == "HTTP 307: redirects are not followed; give the final URL"
