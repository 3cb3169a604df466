"""Host names as an HTTP client sees them, so the guard decides on the host that will be
connected to, not on the string that was given.

``parse_host`` follows the WHATWG URL host parser for special schemes: percent-decoding,
IDNA/UTS-46 mapping (NFKC, full-width and circled digits, ideographic full stops: the same
``idna.encode(..., uts46=True)`` yarl/aiohttp apply, with the codec fallback yarl uses),
and the legacy IPv4 forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``) that
resolvers still accept.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# WHATWG "forbidden domain code points" (besides C0 controls and DEL).
_FORBIDDEN = set(" #%/:<>?@[\\]^|")


class HostError(ValueError):
    pass


def to_ascii(host: str) -> str:
    """The ASCII host yarl (aiohttp's URL type) puts on the wire for ``host``."""
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError:
            raise HostError(f"host {host!r} is not a valid name") from None


def _ipv4_number(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0
    try:
        return int(digits, base) if digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if last and last.isascii() and last.isdigit():
        return True
    return bool(last) and last[:2] in ("0x", "0X") and _ipv4_number(last) is not None


def _ipv4(host: str) -> ipaddress.IPv4Address:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or any(p == "" for p in parts):
        raise HostError(f"host {host!r} is not a valid IPv4 address")
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        raise HostError(f"host {host!r} is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise HostError(f"host {host!r} is not a valid IPv4 address")
    address = values[-1]
    for i, n in enumerate(values[:-1]):
        address += n << (8 * (3 - i))
    return ipaddress.IPv4Address(address)


def parse_host(raw: str) -> str | IPAddress:
    """A URL's host -> an IP address, or the lower-case ASCII name to resolve."""
    host = raw.strip()
    if not host:
        raise HostError("no host")
    if host.startswith("[") or ":" in host:
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            return ipaddress.IPv6Address(inner.split("%", 1)[0])
        except ValueError:
            raise HostError(f"host {raw!r} is not a valid IPv6 address") from None
    decoded = unquote(host, errors="strict") if "%" in host else host
    ascii_host = to_ascii(decoded).lower()
    if not ascii_host or any(c in _FORBIDDEN or ord(c) < 0x21 or c == "\x7f" for c in ascii_host):
        raise HostError(f"host {raw!r} is not a valid name")
    if _ends_in_number(ascii_host):
        return _ipv4(ascii_host)
    return ascii_host.rstrip(".") or ascii_host
