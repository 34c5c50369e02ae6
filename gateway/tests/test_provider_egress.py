"""Providers pass the egress policy: when base_url is saved (API, gateway_sync) and when the
gateway or the connection test connects; redirects are not followed; the connection test
never returns the upstream's reply."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from django.core.management import CommandError, call_command

from core.testing import assert_openai_error, assert_refused
from gateway import catalog, services
from gateway.models import Provider
from gateway.tests.conftest import model_for, provider_for
from gateway.tests.fake_upstream import FakeUpstream, fail

pytestmark = pytest.mark.django_db

INTERNAL_URLS = [
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/v1", "10.0.0.1 is a private-network address"),
    ("http://[::1]:8090/v1", "::1 is a loopback address"),
    ("http://127.0.0.1:8090/v1", "127.0.0.1 is a loopback address"),
    ("http://localhost:8090/v1", "127.0.0.1 is a loopback address"),
    ("http://2130706433/v1", ""),  # decimal 127.0.0.1: refused as a URL or as an address
]


@pytest.fixture(autouse=True)
def _fresh_catalog_cache() -> None:
    catalog._cache.clear()


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
def test_saving_a_provider_with_an_internal_base_url_is_a_400_naming_it(
    settings: Any, admin, team_a, url: str, reason: str
) -> None:
    settings.EGRESS_ALLOWLIST = ""
    data = {"team": team_a.team.id, "name": "internal", "base_url": url}

    response = assert_refused(admin, "post", "/api/v1/providers/", status=400, unchanged=[Provider], data=data)

    assert_openai_error(response, 400, param="base_url")
    assert reason in response.json()["error"]["message"]


def test_changing_a_providers_base_url_to_an_internal_address_is_refused(settings: Any, admin, team_a) -> None:
    provider = services.provider_create(caller=None, team=team_a.team, name="p", base_url="https://8.8.8.8/v1")
    settings.EGRESS_ALLOWLIST = ""

    response = assert_refused(
        admin,
        "patch",
        f"/api/v1/providers/{provider.id}/",
        status=400,
        unchanged=[Provider],
        data={"base_url": "http://169.254.169.254/v1"},
    )

    assert_openai_error(response, 400, param="base_url")


def test_an_allowlisted_loopback_provider_is_saved(settings: Any, admin, team_a) -> None:
    settings.EGRESS_ALLOWLIST = "127.0.0.1"

    response = admin.post(
        "/api/v1/providers/",
        {"team": team_a.team.id, "name": "local", "base_url": "http://127.0.0.1:8090/v1"},
        format="json",
    )

    assert response.status_code == 201, response.content


def test_gateway_sync_refuses_an_internal_base_url(settings: Any, tmp_path) -> None:
    settings.EGRESS_ALLOWLIST = ""
    path = tmp_path / "catalog.yaml"
    path.write_text("providers:\n  - name: meta\n    base_url: http://169.254.169.254/v1\n")

    errors = io.StringIO()

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("gateway_sync", str(path), stdout=io.StringIO(), stderr=errors)

    assert "base_url is not allowed: 169.254.169.254 is a link-local address" in errors.getvalue()
    assert not Provider.objects.exists()


def test_seed_catalog_refuses_an_internal_local_url(settings: Any) -> None:
    settings.EGRESS_ALLOWLIST = ""

    with pytest.raises(CommandError, match=r"127\.0\.0\.1 is a loopback address"):
        call_command("seed_catalog", "--local-url", "http://127.0.0.1:8090/v1", stdout=io.StringIO())

    assert not Provider.objects.filter(base_url="http://127.0.0.1:8090/v1").exists()


def test_the_connection_test_refuses_at_connect_time_once_the_allowlist_is_gone(settings: Any, admin, team_a) -> None:
    with FakeUpstream() as upstream:
        provider = services.provider_create(caller=None, team=team_a.team, name="fake", base_url=upstream.base_url)
        settings.EGRESS_ALLOWLIST = ""  # the operator removed it since: the saved URL no longer passes

        body = admin.post(f"/api/v1/providers/{provider.id}/test/").json()

    assert body["ok"] is False
    assert "egress policy" in body["message"]
    assert "127.0.0.1 is a loopback address" in body["message"]
    assert upstream.requests == []


def test_the_connection_test_never_returns_the_upstreams_reply(admin, team_a) -> None:
    with FakeUpstream() as upstream:
        upstream.enqueue_models(fail(403, "ami-id: i-0abc SecretAccessKey=wJalrXUtnFEMI"))
        provider = services.provider_create(caller=None, team=team_a.team, name="fake", base_url=upstream.base_url)

        body = admin.post(f"/api/v1/providers/{provider.id}/test/").json()

    assert body == {
        "ok": False,
        "message": "The provider answered HTTP 403. Check the provider's API key.",
        "models": [],
        "status_code": 403,
        "elapsed_ms": body["elapsed_ms"],
    }


class Redirector:
    """A real local HTTP server that answers every request with a redirect to `location`."""

    def __init__(self, location: str, status: int = 302) -> None:
        self.hits = 0
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                redirector.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_connection_test_does_not_follow_a_redirect(admin, team_a) -> None:
    with FakeUpstream() as target:
        redirector = Redirector(f"{target.base_url}/models")
        try:
            provider = services.provider_create(
                caller=None, team=team_a.team, name="fake", base_url=redirector.base_url
            )
            body = admin.post(f"/api/v1/providers/{provider.id}/test/").json()
        finally:
            redirector.close()

    assert (body["ok"], body["status_code"]) == (False, 302)
    assert body["message"] == "The provider answered HTTP 302. Redirects are not followed; give the final base_url."
    assert redirector.hits == 1
    assert target.requests == []


def test_the_gateway_does_not_follow_a_providers_redirect(gateway_client, fake_upstream) -> None:
    redirector = Redirector(f"{fake_upstream.base_url}/chat/completions", status=307)
    try:
        provider = provider_for(fake_upstream, max_retries=0)
        provider.base_url = redirector.base_url
        provider.save(update_fields=["base_url"])
        model_for(provider)

        with pytest.raises(openai.APIStatusError) as refused:
            gateway_client.sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    finally:
        redirector.close()

    assert refused.value.status_code == 502
    assert refused.value.code == "upstream_redirect"
    assert redirector.hits == 1
    assert fake_upstream.chat_requests() == []
