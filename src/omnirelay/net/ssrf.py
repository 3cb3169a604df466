"""The SSRF guard: one check for every outgoing connection a tenant can aim (webhook and
callback-server URLs, report/reply URLs, gateway webhooks and media URLs, provider base
URLs, SMPP hosts).

A target passes when every address it resolves to is public, or inside a network the
operator allowed (``OMNIRELAY_ALLOWED_NETWORKS``, plus the older
``OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS``). The host is first normalised as the HTTP client
will normalise it (``hosts.parse_host``), so a spelling the client turns into 127.0.0.1
is refused as 127.0.0.1. IPv6 forms that carry an IPv4 address (mapped, compatible,
NAT64, 6to4, Teredo) are judged by that address too. The caller then connects to the
checked address only (``Target.pinned_url``, ``connectors``): a second DNS answer cannot
change the peer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from omnirelay.errors import InvalidInput
from omnirelay.net.hosts import HostError, IPAddress, parse_host

__all__ = ["IPAddress", "IPNetwork", "Target", "UnsafeURL"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused on top of what ipaddress flags as non-global: cloud metadata services, and the
# local-use NAT64 prefix (RFC 8215), whose embedded IPv4 position depends on the prefix.
REFUSED = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 ::ffff:0:a.b.c.d


class UnsafeURL(InvalidInput):
    def __init__(self, message: str, field: str = "url") -> None:
        super().__init__("unsafe_url", message, field=field)


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # normalised: lower-case ASCII name, or the address itself
    port: int
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the host replaced by the checked address (Host header and TLS
        server name must then be set to ``host``)."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return urlunsplit((parts.scheme, f"{ip}:{self.port}", parts.path or "/", parts.query, ""))


# --- networks the operator allowed ----------------------------------------------------------


@lru_cache(maxsize=64)
def _parse(spec: str) -> tuple[IPNetwork, ...]:
    return tuple(
        ipaddress.ip_network(s.strip(), strict=False) for s in spec.split(",") if s.strip()
    )


def parse_networks(spec: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    return _parse(spec if isinstance(spec, str) else ",".join(spec))


def allowed_networks(settings: Any) -> tuple[IPNetwork, ...]:
    """What the operator allowed: ``OMNIRELAY_ALLOWED_NETWORKS`` and, for compatibility,
    ``OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS`` (both apply to every sink)."""
    general = str(getattr(settings, "allowed_networks", "") or "")
    webhooks = str(getattr(settings, "webhook_allowed_networks", "") or "")
    return parse_networks(",".join(s for s in (general, webhooks) if s))


# --- addresses ------------------------------------------------------------------------------


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 transition form delivers to."""
    found: list[ipaddress.IPv4Address] = []
    n = int(address)
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    elif n >> 32 == 0 and n > 1:  # IPv4-compatible ::a.b.c.d (:: and ::1 are themselves)
        found.append(ipaddress.IPv4Address(n))
    elif address in NAT64 or address in IPV4_TRANSLATED:
        found.append(ipaddress.IPv4Address(n & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # the server and the (de-obfuscated) client
    return found


def _public(address: IPAddress) -> bool:
    return not (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or any(address in net for net in REFUSED)
    )


def address_allowed(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        # Mapped, compatible and NAT64 forms deliver to the IPv4 address: judge that.
        n = int(address)
        pure = address.ipv4_mapped is not None or (n >> 32 == 0 and n > 1)
        if pure or address in NAT64 or address in IPV4_TRANSLATED:
            return any(address in net for net in allowed) or address_allowed(inner[0], allowed)
        if inner and not all(address_allowed(a, allowed) for a in inner):
            return False
    if any(address in net for net in allowed):
        return True
    return _public(address)


def check_address(
    address: IPAddress, allowed: Sequence[IPNetwork] = (), field: str = "url"
) -> None:
    if not address_allowed(address, allowed):
        raise UnsafeURL(
            f"url not allowed: {address} is a private, loopback, multicast or reserved address",
            field,
        )


# --- URLs and hosts ---------------------------------------------------------------------------


def _host(raw: str, field: str) -> str | IPAddress:
    try:
        return parse_host(raw)
    except HostError as exc:
        raise UnsafeURL(f"url invalid: {exc}", field) from None


def _split(url: str, field: str = "url") -> tuple[str, str | IPAddress, int]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        netloc_host = parts.netloc.rpartition("@")[2]
    except ValueError as exc:
        raise UnsafeURL(f"url invalid: {exc}", field) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("url invalid: only http and https URLs are allowed", field)
    if not parts.hostname:
        raise UnsafeURL("url invalid: no host", field)
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("url invalid: credentials in the URL are not allowed", field)
    raw = netloc_host
    if raw.startswith("["):
        raw = raw[: raw.index("]") + 1] if "]" in raw else raw
    elif ":" in raw:
        raw = raw.rsplit(":", 1)[0]
    return scheme, _host(raw, field), port or (443 if scheme == "https" else 80)


def _pick(
    url: str,
    scheme: str,
    host: str,
    port: int,
    infos: list[str],
    allowed: Sequence[IPNetwork],
    field: str,
) -> Target:
    if not infos:
        raise UnsafeURL(f"url unreachable: {host} does not resolve", field)
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in infos]
    # Every answer must pass: otherwise a host with one public and one private record
    # could be pinned to either depending on order.
    for address in addresses:
        check_address(address, allowed, field)
    return Target(url.strip(), scheme, host, port, addresses[0])


def _lookup(host: str, port: int, field: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"url unreachable: {host} does not resolve", field) from None
    return [str(i[4][0]) for i in infos]


def resolve(url: str, allowed: Sequence[IPNetwork] = (), field: str = "url") -> Target:
    scheme, host, port = _split(url, field)
    if not isinstance(host, str):
        check_address(host, allowed, field)
        return Target(url.strip(), scheme, str(host), port, host)
    return _pick(url, scheme, host, port, _lookup(host, port, field), allowed, field)


async def resolve_async(url: str, allowed: Sequence[IPNetwork] = ()) -> Target:
    scheme, host, port = _split(url)
    if not isinstance(host, str):
        check_address(host, allowed)
        return Target(url.strip(), scheme, str(host), port, host)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"url unreachable: {host} does not resolve") from None
    return _pick(url, scheme, host, port, [str(i[4][0]) for i in infos], allowed, "url")


def precheck(
    url: str, allowed: Sequence[IPNetwork] = (), field: str = "url"
) -> tuple[str, str, int]:
    """Checks that need no DNS: the URL's shape, and its address when the host is (or
    normalises to) an IP literal, which HTTP clients connect to without a resolver.
    Names are checked when connecting (``connectors``)."""
    scheme, host, port = _split(url, field)
    if not isinstance(host, str):
        check_address(host, allowed, field)
        return scheme, str(host), port
    _loopback_name(host, allowed, field)
    return scheme, host, port


def _loopback_name(host: str, allowed: Sequence[IPNetwork], field: str) -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    local = host == "localhost" or host.endswith(".localhost")
    if local and not any(loopback in net for net in allowed):
        raise UnsafeURL(f"url not allowed: {host} is a loopback name", field)


def validate_url(url: str, allowed: Sequence[IPNetwork] = (), field: str = "url") -> str:
    """Check a URL when it is given to us (stored settings, per-message report URLs).
    Delivery checks it again, since DNS may change in between."""
    resolve(url, allowed, field)
    return url.strip()


def check_host(
    host: str, port: int, allowed: Sequence[IPNetwork] = (), field: str = "host"
) -> IPAddress:
    """A bare host (an SMPP server): every address it resolves to must pass. Returns the
    address to connect to, so the connection goes where the check went."""
    parsed = _host(str(host), field)
    if not isinstance(parsed, str):
        check_address(parsed, allowed, field)
        return parsed
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in _lookup(parsed, port, field)]
    if not addresses:
        raise UnsafeURL(f"url unreachable: {parsed} does not resolve", field)
    for address in addresses:
        check_address(address, allowed, field)
    return addresses[0]


def precheck_host(host: str, allowed: Sequence[IPNetwork] = (), field: str = "host") -> None:
    """``check_host`` without DNS: the shape, and the address of a literal. For checks
    inside a transaction; the name is resolved and checked again when connecting."""
    parsed = _host(str(host), field)
    if not isinstance(parsed, str):
        check_address(parsed, allowed, field)
    else:
        _loopback_name(parsed, allowed, field)
