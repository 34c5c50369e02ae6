"""The egress policy: where the server may send a request made on a tenant's behalf
(a provider's `base_url`, a budget's webhook, later an evaluation judge).

A URL's host is resolved (getaddrinfo, so every spelling of an address — `2130706433`,
`0x7f.1`, `[::ffff:127.0.0.1]` — ends up as the address it really is) and each address is
checked with `ipaddress`: loopback, link-local (169.254.0.0/16, where cloud metadata
lives), private, shared, multicast, reserved and unspecified ranges, and IPv6 forms that
embed such an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64), are refused unless the
operator's allowlist (`EGRESS_ALLOWLIST`: IP addresses or CIDR ranges) contains them.

It is checked twice: when the URL is saved (`check_url`: a 400 naming the field) and when a
connection opens (`AsyncEgressTransport`, `egress_client`), because DNS can change between
the two. The connect-time check resolves the name itself and connects to the address it
checked (pinned), so a name that resolves to a public address for the check and to an
internal one a moment later (DNS rebinding) cannot slip through; TLS still verifies the
certificate against the host name. Redirects are never followed.

Cost on the gateway's hot path: the check runs once per new TCP connection, inside the
connection pool's connect, and replaces the resolution the pool would have done anyway; a
pooled (kept-alive) connection is reused without any check. The address check itself is a
few microseconds.

This module imports no app.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2
from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class EgressRefused(Exception):
    """The destination is not one the server may reach on a tenant's behalf."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_allowlist(value: str) -> tuple[Network, ...]:
    """`EGRESS_ALLOWLIST`: comma-separated IP addresses or CIDR ranges. Raises ValueError
    naming the entry that is neither (settings call it at startup)."""
    networks: list[Network] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"EGRESS_ALLOWLIST entry '{entry}' is not an IP address or CIDR range "
                "(e.g. 127.0.0.1, 10.0.0.0/8, ::1); separate entries with commas."
            ) from None
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def _allowlist(value: str) -> tuple[Network, ...]:
    return parse_allowlist(value)


def allowlist() -> tuple[Network, ...]:
    return _allowlist(getattr(settings, "EGRESS_ALLOWLIST", "") or "")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why the address may not be reached, or None when it may."""
    if any(address.version == network.version and address in network for network in allowlist()):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{reason} (inside {address})" if reason else None
    if address.is_unspecified:
        kind = "an unspecified address"
    elif address.is_loopback:
        kind = "a loopback address"
    elif address.is_link_local:
        kind = "a link-local address"
    elif address.is_multicast:
        kind = "a multicast address"
    elif address.is_reserved:
        kind = "a reserved address"
    elif address.is_private:
        kind = "a private-network address"
    elif not address.is_global:
        kind = "a reserved address"
    else:
        return None
    return f"{address} is {kind}"


def _parse_address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])


def _checked(host: str, infos: Iterable[tuple[Any, ...]]) -> list[str]:
    """The allowed addresses among the resolved ones (in resolver order), or EgressRefused."""
    allowed: list[str] = []
    reasons: list[str] = []
    for info in infos:
        text = str(info[4][0])
        reason = refusal(_parse_address(text))
        if reason is None:
            if text not in allowed:
                allowed.append(text)
        elif reason not in reasons:
            reasons.append(reason)
    if not allowed:
        detail = "; ".join(reasons) if reasons else "it resolves to no address"
        where = detail if detail.startswith(f"{host} ") else f"{host} may not be reached: {detail}"
        raise EgressRefused(
            f"{where}. Internal addresses are refused unless the operator allows them with EGRESS_ALLOWLIST."
        )
    return allowed


def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` the server may connect to (blocking)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise EgressRefused(f"{host} cannot be resolved ({error}).") from None
    return _checked(host, infos)


async def resolve_async(host: str, port: int) -> list[str]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise EgressRefused(f"{host} cannot be resolved ({error}).") from None
    return _checked(host, infos)


def check_url(url: str) -> None:
    """Raise EgressRefused when `url` (http or https) points where the server may not go.

    A name that does not resolve now is accepted: it reaches nothing, and the connect-time
    check decides when it does resolve (an offline `gateway_sync` must still work)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise EgressRefused(f"the URL cannot be parsed ({error}).") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused("only http(s) URLs with a host are allowed.")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    _checked(parts.hostname, infos)


# Connect-time enforcement: network backends that check and pin the address ---------------


class _AsyncBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, inner: httpcore2.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve_async(host, port)
        except EgressRefused as refused:
            raise httpcore2.ConnectError(f"Refused by the egress policy: {refused.reason}") from None
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"Resolving {host} timed out.") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore2.ConnectError as error:
                last = error
        assert last is not None  # addresses is never empty
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("Refused by the egress policy: Unix sockets are not reachable.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _SyncBackend(httpcore2.NetworkBackend):
    def __init__(self, inner: httpcore2.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        try:
            addresses = resolve(host, port)
        except EgressRefused as refused:
            raise httpcore2.ConnectError(f"Refused by the egress policy: {refused.reason}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore2.ConnectError as error:
                last = error
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        raise httpcore2.ConnectError("Refused by the egress policy: Unix sockets are not reachable.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncEgressTransport(httpx2.AsyncHTTPTransport):
    """httpx's transport whose every new connection passes the egress policy. Environment
    proxies are ignored (trust_env=False): the policy checks the address actually reached."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        # httpx exposes no network_backend argument; its pool creates connections with this one.
        self._pool._network_backend = _AsyncBackend(self._pool._network_backend)


class EgressTransport(httpx2.HTTPTransport):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        self._pool._network_backend = _SyncBackend(self._pool._network_backend)


def egress_async_client(**kwargs: Any) -> httpx2.AsyncClient:
    """An httpx client for tenant-directed requests: egress-checked connections, no redirects."""
    limits = kwargs.pop("limits", httpx2.Limits())
    return httpx2.AsyncClient(
        transport=AsyncEgressTransport(limits=limits), follow_redirects=False, trust_env=False, **kwargs
    )


def egress_client(**kwargs: Any) -> httpx2.Client:
    limits = kwargs.pop("limits", httpx2.Limits())
    return httpx2.Client(transport=EgressTransport(limits=limits), follow_redirects=False, trust_env=False, **kwargs)
