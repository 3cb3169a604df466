"""Email addresses as omnirelay takes them: one plain ``local@domain`` (ASCII local part,
the domain as IDNA), lower-cased domain, nothing that could smuggle a header or a second
recipient. Used by the /v3 validation and the connection settings alike."""

from __future__ import annotations

import re

MAX_ADDRESS = 254  # RFC 5321's path limit less the angle brackets
# RFC 5322 dot-atom local part; quoted local parts are refused (nobody needs them and they
# are where header and envelope parsers disagree).
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class BadAddress(ValueError):
    pass


def normalize(value: object) -> str:
    """``local@domain`` with the domain lower-cased and IDNA-encoded; BadAddress naming
    what is wrong otherwise."""
    if not isinstance(value, str):
        raise BadAddress("an email address must be a string")
    text = value.strip()
    if not text or len(text) > MAX_ADDRESS:
        raise BadAddress(f"an email address is 3..{MAX_ADDRESS} characters")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise BadAddress(f"{text!r} is not an email address (local@domain)")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise BadAddress(f"{text!r} has an invalid local part")
    return f"{local}@{normalize_domain(domain, text)}"


def normalize_domain(domain: str, shown: str | None = None) -> str:
    shown = shown or domain
    try:
        ascii_domain = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise BadAddress(f"{shown!r} has an invalid domain") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise BadAddress(f"{shown!r} has an invalid domain")
    return ascii_domain


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def mailbox_key(address: str) -> str:
    """How the inbound listener matches a recipient to a connection's address: the
    lower-cased address without a ``+tag`` (``news+bounce@x`` reaches ``news@x``)."""
    local, _, domain = address.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"
