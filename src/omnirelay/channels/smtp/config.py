"""Settings of an ``smtp`` connection (``POST /api/connections``), checked when stored
(docs/channels/email.md lists them). No network use here: the host's addresses are
checked by the admin surface before its transaction and again by every connect."""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import dkim.crypto

from omnirelay.channels.smtp.addresses import BadAddress, domain_of, normalize, normalize_domain
from omnirelay.net.ssrf import IPNetwork, UnsafeURL, precheck_host

SECURITY = ("none", "starttls", "tls")
DEFAULT_PORT = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 120.0
MAX_CONNECTIONS = 50
DEFAULT_BOUNCE_WINDOW = 600.0
MAX_PROVIDER_ID = 100  # message_attempts.provider_message_id
UUID_HEX = 32  # the local part of a Message-ID: the message id without dashes
SECRET = 4096
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    from_address: str
    port: int = 0  # 0: the security's default
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    return_path: str | None = None  # the envelope sender (bounces go there); from_address
    dkim_selector: str | None = None
    dkim_domain: str | None = None  # the from address's domain when not set
    dkim_private_key: str | None = None  # PEM, RSA
    tls_verify: bool = True
    ca_cert: str | None = None  # PEM of the CA to trust instead of the system's
    timeout: float = DEFAULT_TIMEOUT
    max_connections: int = 4
    bounce_window: float = DEFAULT_BOUNCE_WINDOW
    list_unsubscribe: str | None = None  # https URL or mailto:, {message_id}/{email} filled
    message_id_domain: str | None = None  # the from address's domain when not set
    local_hostname: str | None = None  # the EHLO name; the machine's name when not set

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], allowed: Sequence[IPNetwork] | None = None
    ) -> SmtpConfig:
        """Parse and normalise; ValueError naming what is wrong. With ``allowed``, the
        host also passes the SSRF guard's checks that need no DNS (its shape, an address
        literal, a loopback name)."""
        if not isinstance(settings, Mapping):
            raise ValueError("settings must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown smtp setting {unknown[0]!r}")
        return _parse(dict(settings), None if allowed is None else tuple(allowed))

    def as_settings(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORT[self.security]

    @property
    def envelope_from(self) -> str:
        return self.return_path or self.from_address

    @property
    def id_domain(self) -> str:
        return self.message_id_domain or domain_of(self.from_address)

    @property
    def signing_domain(self) -> str:
        return self.dkim_domain or domain_of(self.from_address)

    def tls_context(self) -> ssl.SSLContext:
        return _tls_context(self.tls_verify, self.ca_cert)


def _parse(raw: dict[str, Any], allowed: tuple[IPNetwork, ...] | None) -> SmtpConfig:
    host = raw.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ValueError("host is required: the SMTP server's name or address")
    host = host.strip().rstrip(".").lower()
    if len(host) > 253 or any(c not in _PRINTABLE or c.isspace() for c in host):
        raise ValueError("host must be a host name or an IP address")
    if allowed is not None:
        try:
            precheck_host(host, allowed, field="settings.host")
        except UnsafeURL as exc:
            raise ValueError(f"host {exc.message}") from None
    security = raw.get("security", "starttls")
    if security not in SECURITY:
        raise ValueError(f"security must be one of {', '.join(SECURITY)}")
    port = raw.get("port", 0)
    if port in (None, ""):
        port = 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError("port must be 1..65535 (or 0 for the security's default)")
    username, password = _secret(raw, "username"), _secret(raw, "password")
    if (username is None) != (password is None):
        raise ValueError("username and password go together")
    if username is not None and security == "none":
        raise ValueError("a password is only sent over TLS: security must be starttls or tls")
    from_address = _address(raw.get("from_address"), "from_address", required=True)
    assert from_address is not None
    from_name = raw.get("from_name")
    if from_name is not None and (
        not isinstance(from_name, str) or len(from_name) > 200 or _has_control(from_name)
    ):
        raise ValueError("from_name must be text of at most 200 characters, one line")
    dkim_fields = _dkim(raw, from_address)
    tls_verify = raw.get("tls_verify", True)
    if not isinstance(tls_verify, bool):
        raise ValueError("tls_verify must be true or false")
    ca_cert = raw.get("ca_cert")
    if ca_cert is not None:
        if not isinstance(ca_cert, str) or "BEGIN CERTIFICATE" not in ca_cert:
            raise ValueError("ca_cert must be a PEM certificate")
        try:
            _tls_context(True, ca_cert)
        except ssl.SSLError:
            raise ValueError("ca_cert is not a readable PEM certificate") from None
    message_id_domain = raw.get("message_id_domain")
    if message_id_domain is not None:
        try:
            message_id_domain = normalize_domain(str(message_id_domain))
        except BadAddress:
            raise ValueError("message_id_domain must be a domain name") from None
    id_domain = message_id_domain or domain_of(from_address)
    if UUID_HEX + 1 + len(id_domain) > MAX_PROVIDER_ID:
        raise ValueError(
            f"the Message-ID domain {id_domain!r} is too long (at most "
            f"{MAX_PROVIDER_ID - UUID_HEX - 1} characters): set message_id_domain"
        )
    local_hostname = raw.get("local_hostname")
    if local_hostname is not None:
        try:
            local_hostname = normalize_domain(str(local_hostname))
        except BadAddress:
            raise ValueError("local_hostname must be a domain name") from None
    return SmtpConfig(
        host=host,
        from_address=from_address,
        port=port,
        security=security,
        username=username,
        password=password,
        from_name=from_name.strip() if from_name else None,
        reply_to=_address(raw.get("reply_to"), "reply_to"),
        return_path=_address(raw.get("return_path"), "return_path"),
        tls_verify=tls_verify,
        ca_cert=ca_cert,
        timeout=_number(raw, "timeout", DEFAULT_TIMEOUT, 0, MAX_TIMEOUT, open_low=True),
        max_connections=int(_number(raw, "max_connections", 4, 1, MAX_CONNECTIONS, whole=True)),
        bounce_window=_number(raw, "bounce_window", DEFAULT_BOUNCE_WINDOW, 0, 86400),
        list_unsubscribe=_unsubscribe(raw.get("list_unsubscribe"), "list_unsubscribe"),
        message_id_domain=message_id_domain,
        local_hostname=local_hostname,
        **dkim_fields,
    )


def _secret(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > SECRET or _has_control(value):
        raise ValueError(f"{key} must be a string of at most {SECRET} characters, one line")
    return value


def _address(value: Any, key: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ValueError(f"{key} is required: the address messages are sent from")
        return None
    try:
        return normalize(value)
    except BadAddress as exc:
        raise ValueError(f"{key}: {exc}") from None


def _dkim(raw: dict[str, Any], from_address: str) -> dict[str, Any]:
    selector, key = raw.get("dkim_selector"), raw.get("dkim_private_key")
    domain = raw.get("dkim_domain")
    if selector in (None, "") and key in (None, "") and domain in (None, ""):
        return {}
    if selector in (None, "") or key in (None, ""):
        raise ValueError("DKIM needs dkim_selector and dkim_private_key (and dkim_domain)")
    if not isinstance(selector, str) or not all(
        part and all(c.isalnum() or c == "-" for c in part) for part in selector.split(".")
    ):
        raise ValueError("dkim_selector must be a DNS label (letters, digits, hyphens)")
    if domain not in (None, ""):
        try:
            domain = normalize_domain(str(domain))
        except BadAddress:
            raise ValueError("dkim_domain must be a domain name") from None
    else:
        domain = None
    signing, own = domain or domain_of(from_address), domain_of(from_address)
    if own != signing and not own.endswith("." + signing):
        raise ValueError(
            f"dkim_domain {signing!r} must be the from address's domain or a parent of it "
            "(DMARC alignment)"
        )
    if not isinstance(key, str) or len(key) > 16384:
        raise ValueError("dkim_private_key must be a PEM RSA private key")
    _check_key(key)
    return {"dkim_selector": selector.lower(), "dkim_domain": domain, "dkim_private_key": key}


def _check_key(pem: str) -> None:
    try:
        parsed = dkim.crypto.parse_pem_private_key(pem.encode())
    except Exception:  # dkimpy's UnparsableKeyError, or ASN.1 errors of a broken key
        raise ValueError("dkim_private_key is not a readable PEM RSA private key") from None
    modulus = parsed.get("modulus", 0) if isinstance(parsed, dict) else 0
    if int(modulus).bit_length() < 1024:
        raise ValueError("dkim_private_key must be an RSA key of at least 1024 bits")


def _unsubscribe(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000 or _has_control(value) or " " in value:
        raise ValueError(f"{key} must be an https URL or a mailto: address")
    parts = urlsplit(value)
    if parts.scheme == "mailto":
        try:
            normalize(parts.path)
        except BadAddress as exc:
            raise ValueError(f"{key}: {exc}") from None
    elif parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{key} must be an https URL or a mailto: address")
    if any(c in value for c in "<>,"):
        raise ValueError(f"{key} must not contain <, > or commas")
    return value


def _number(
    raw: dict[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    whole: bool = False,
) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and whole and value != int(value):
        ok = False
    if not ok or value > high or value < low or (open_low and value <= low):
        bracket = "(" if open_low else "["
        raise ValueError(f"{key} must be a number in {bracket}{low:g}, {high:g}]")
    return float(value)


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


@lru_cache(maxsize=64)
def _tls_context(verify: bool, ca_cert: str | None) -> ssl.SSLContext:
    # One context per configuration: building one reads the system's CA store.
    context = (
        ssl.create_default_context(cadata=ca_cert) if ca_cert else ssl.create_default_context()
    )
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@lru_cache(maxsize=256)
def _parsed(key: tuple[tuple[str, Any], ...]) -> SmtpConfig:
    return SmtpConfig.from_settings(dict(key))


def cached(settings: Mapping[str, Any]) -> SmtpConfig:
    """The config of stored settings, parsed once per process (the DKIM key's parse is
    not free); settings that are not hashable are parsed each time."""
    try:
        return _parsed(tuple(sorted(settings.items())))
    except TypeError:
        return SmtpConfig.from_settings(settings)
