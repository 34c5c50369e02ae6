"""The egress policy (core/egress.py): which addresses a tenant's URL may reach, and
the connect-time check of the httpx transports (resolved, checked and pinned per connection)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from core import egress

REFUSED_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/v1", "10.0.0.1 is a private-network address"),
    ("http://192.168.1.10/v1", "192.168.1.10 is a private-network address"),
    ("http://[::1]:8090/v1", "::1 is a loopback address"),
    ("http://127.0.0.1:8090/v1", "127.0.0.1 is a loopback address"),
    ("http://localhost:8090/v1", "127.0.0.1 is a loopback address"),
    ("http://2130706433/v1", "127.0.0.1 is a loopback address"),  # decimal spelling of 127.0.0.1
    ("http://0x7f.1/v1", "127.0.0.1 is a loopback address"),  # hexadecimal and short spelling
    ("http://0177.0.0.1/v1", "127.0.0.1 is a loopback address"),  # octal spelling
    ("http://0.0.0.0/v1", "0.0.0.0 is an unspecified address"),
    ("http://[::ffff:169.254.169.254]/", "169.254.169.254 is a link-local address"),  # IPv4-mapped IPv6
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fd00::1]/", "fd00::1 is a private-network address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://100.64.0.1/", "100.64.0.1 is a reserved address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
]


@pytest.fixture
def no_allowlist(settings: Any) -> None:
    settings.EGRESS_ALLOWLIST = ""


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_internal_addresses_are_refused_in_every_spelling(no_allowlist: None, url: str, reason: str) -> None:
    with pytest.raises(egress.EgressRefused) as refused:
        egress.check_url(url)

    assert reason in refused.value.reason
    assert refused.value.reason.endswith("unless the operator allows them with EGRESS_ALLOWLIST.")


def test_a_public_address_is_allowed(no_allowlist: None) -> None:
    egress.check_url("https://8.8.8.8/v1")
    egress.check_url("http://[2606:4700:4700::1111]/v1")


def test_a_name_that_does_not_resolve_is_left_to_the_connect_time_check(no_allowlist: None) -> None:
    egress.check_url("https://provider.invalid/v1")


def test_the_allowlist_permits_addresses_and_ranges(settings: Any) -> None:
    settings.EGRESS_ALLOWLIST = "127.0.0.1, 10.0.0.0/8"

    egress.check_url("http://127.0.0.1:8090/v1")
    egress.check_url("http://10.20.30.40/v1")
    with pytest.raises(egress.EgressRefused):
        egress.check_url("http://127.0.0.2/v1")
    with pytest.raises(egress.EgressRefused):
        egress.check_url("http://169.254.169.254/")


@pytest.mark.parametrize("value", ["127.0.0.1,localhost", "10.0.0.0/33", "not-an-ip"])
def test_an_invalid_allowlist_entry_is_named(value: str) -> None:
    with pytest.raises(ValueError, match=r"EGRESS_ALLOWLIST entry '.+' is not an IP address or CIDR range"):
        egress.parse_allowlist(value)


def test_an_invalid_allowlist_fails_at_startup() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "controlplane.settings_test",
            "EGRESS_ALLOWLIST": "127.0.0.1,nonsense",
            "PATH": "",
        },
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "EGRESS_ALLOWLIST entry 'nonsense' is not an IP address or CIDR range" in result.stderr


class _Server:
    """A real local HTTP server answering `status` with `headers` to every request."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so that a client can reuse its connection

            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.close()


@pytest.fixture
def rebinding_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """`public.example` resolves to a public address when the URL is saved and to loopback
    afterwards: DNS outside the project, changed between check and connect."""
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "public.example":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_later_resolves_inside_is_refused_when_connecting(
    no_allowlist: None, rebinding_resolver: None, server: _Server
) -> None:
    url = f"http://public.example:{server.port}/v1/models"
    egress.check_url(url)  # saved: it resolved to a public address then

    with egress.egress_client() as client, pytest.raises(httpx2.ConnectError, match="egress policy"):
        client.get(url)
    assert server.hits == 0


def test_the_async_transport_refuses_at_connect_time(no_allowlist: None, server: _Server) -> None:
    async def get() -> None:
        async with egress.egress_async_client() as client:
            await client.get(f"http://localhost:{server.port}/v1/models")

    with pytest.raises(httpx2.ConnectError, match=r"127\.0\.0\.1 is a loopback address"):
        asyncio.run(get())
    assert server.hits == 0


def test_the_async_transport_checks_once_per_connection_and_pins_the_address(
    settings: Any, monkeypatch: pytest.MonkeyPatch, server: _Server
) -> None:
    settings.EGRESS_ALLOWLIST = "127.0.0.1"
    checks: list[str] = []
    real = egress._checked

    def counted(host: str, infos: Any) -> list[str]:
        checks.append(host)
        return real(host, infos)

    monkeypatch.setattr(egress, "_checked", counted)

    async def get_three_times() -> list[int]:
        async with egress.egress_async_client() as client:
            return [(await client.get(f"http://localhost:{server.port}/v1/models")).status_code for _ in range(3)]

    assert asyncio.run(get_three_times()) == [200, 200, 200]

    assert server.hits == 3
    assert checks == ["localhost"]  # one pooled connection, one check


def test_redirects_are_not_followed(settings: Any) -> None:
    settings.EGRESS_ALLOWLIST = "127.0.0.1"
    target = _Server()
    redirecting = _Server(302, {"Location": f"http://127.0.0.1:{target.port}/latest/meta-data/"})
    try:
        with egress.egress_client() as client:
            response = client.get(f"http://127.0.0.1:{redirecting.port}/v1/models")
    finally:
        redirecting.close()
        target.close()

    assert response.status_code == 302
    assert (redirecting.hits, target.hits) == (1, 0)
