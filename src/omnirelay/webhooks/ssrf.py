"""The SSRF guard for every user-supplied URL.

A URL passes when its scheme is http or https, it carries no credentials, and every
address its host resolves to is public, or inside a network the operator allowed
(``OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS``). The caller then connects to the checked
address only (``Target.pinned_url``), so a second DNS answer cannot change the peer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from omnirelay.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges refused on top of what ipaddress flags as non-global: cloud metadata services.
METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)


class UnsafeURL(InvalidInput):
    def __init__(self, message: str) -> None:
        super().__init__("unsafe_url", message, field="url")


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the host replaced by the checked address (Host header and TLS
        server name must then be set to ``host``)."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return urlunsplit((parts.scheme, f"{ip}:{self.port}", parts.path or "/", parts.query, ""))


def parse_networks(spec: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in items if s.strip())


def _split(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"url invalid: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("url invalid: only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeURL("url invalid: no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("url invalid: credentials in the URL are not allowed")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def check_address(address: IPAddress, allowed: Sequence[IPNetwork]) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in net for net in allowed):
        return
    if not address.is_global or any(address in net for net in METADATA):
        raise UnsafeURL(f"url not allowed: {address} is a private, loopback or reserved address")


def _pick(
    url: str, scheme: str, host: str, port: int, infos: list[str], allowed: Sequence[IPNetwork]
) -> Target:
    if not infos:
        raise UnsafeURL(f"url unreachable: {host} does not resolve")
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in infos]
    # Every answer must pass: otherwise a host with one public and one private record
    # could be pinned to either depending on order.
    for address in addresses:
        check_address(address, allowed)
    return Target(url.strip(), scheme, host, port, addresses[0])


def resolve(url: str, allowed: Sequence[IPNetwork] = ()) -> Target:
    scheme, host, port = _split(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeURL(f"url unreachable: {host} does not resolve") from None
    return _pick(url, scheme, host, port, [str(i[4][0]) for i in infos], allowed)


async def resolve_async(url: str, allowed: Sequence[IPNetwork] = ()) -> Target:
    scheme, host, port = _split(url)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeURL(f"url unreachable: {host} does not resolve") from None
    return _pick(url, scheme, host, port, [str(i[4][0]) for i in infos], allowed)


def precheck(url: str, allowed: Sequence[IPNetwork] = ()) -> tuple[str, str, int]:
    """Checks that need no DNS: the URL's shape, and its address when the host is an IP
    literal (HTTP clients connect to literals without asking a resolver)."""
    scheme, host, port = _split(url)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return scheme, host, port
    check_address(literal, allowed)
    return scheme, host, port


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses names resolving to addresses not allowed; the
    connection goes to exactly the addresses it checked (the pin)."""

    def __init__(self, allowed: Sequence[IPNetwork] = ()) -> None:
        self._inner = ThreadedResolver()
        self.allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise UnsafeURL(f"url unreachable: {host} does not resolve")
        for result in results:
            check_address(ipaddress.ip_address(result["host"]), self.allowed)
        return results

    async def close(self) -> None:
        await self._inner.close()


def validate_url(url: str, allowed: Sequence[IPNetwork] = ()) -> str:
    """Check a URL when it is given to us (stored settings, per-message report URLs).
    Delivery checks it again, since DNS may change in between."""
    resolve(url, allowed)
    return url.strip()
