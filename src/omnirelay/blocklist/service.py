"""Rules of the block lists: numbers are stored as E.164 digits (any spelling a client
sends is the same number), networks as normalised CIDR; a single address is a /32 or
/128.

Sending checks numbers in the accept transaction, once per organization per batch
(:func:`blocked_phones`). The IP check (:func:`ip_blocked`) runs before any transaction on
every request of a guarded surface, so it reads from a small in-process cache: a change
made in this process is seen at once, one made in another process within ``TTL``."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from omnirelay.blocklist import repository as repo
from omnirelay.blocklist.models import BlockedNetwork, BlockedPhone, OptOutSettings
from omnirelay.db import Database, utcnow
from omnirelay.errors import InvalidInput, NotFound
from omnirelay.phones import InvalidPhone, parse_phone

TTL = 5.0  # seconds another process's change may take to be seen here
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- phones ---------------------------------------------------------------------------


def blocked_phones(session: Session, organization_id: str, phones: Iterable[str]) -> set[str]:
    """Which of ``phones`` (E.164 digits) the organization blocked."""
    return repo.blocked_among(session, organization_id, phones)


def _digits(raw: object, field: str, default_region: str | None) -> str:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise InvalidInput("invalid_phone", "a phone number is a string", field=field)
    try:
        return parse_phone(str(raw), default_region).digits
    except InvalidPhone as exc:
        raise InvalidInput("invalid_phone", f"{raw!r}: {exc}", field=field) from None


def add_phones(
    session: Session,
    organization_id: str,
    phones: Sequence[object],
    reason: str | None,
    default_region: str | None,
) -> list[BlockedPhone]:
    """Block numbers; the entries in the order given (those already blocked as they are)."""
    digits = list(
        dict.fromkeys(_digits(p, f"phones[{i}]", default_region) for i, p in enumerate(phones))
    )
    have = repo.phones_by_number(session, organization_id, digits)
    now = utcnow()
    new = [
        BlockedPhone(organization_id=organization_id, phone=d, reason=reason, created_at=now)
        for d in digits
        if d not in have
    ]
    repo.add(session, new)
    have.update({r.phone: r for r in new})
    return [have[d] for d in digits]


def list_phones(
    session: Session, organization_id: str, limit: int, offset: int
) -> tuple[Sequence[BlockedPhone], int]:
    return repo.phones(session, organization_id, limit, offset)


def remove_phone(session: Session, organization_id: str, row_id: int) -> None:
    row = repo.phone(session, organization_id, row_id)
    if row is None:
        raise NotFound("blocked_phone_not_found", f"no blocked phone {row_id}")
    repo.delete(session, row)


# --- opt-out: an end user's STOP / START --------------------------------------------

DEFAULT_STOP = ("STOP", "UNSUBSCRIBE", "СТОП")
DEFAULT_START = ("START",)
MAX_WORDS = 20
MAX_WORD = 64


def keyword(text: str) -> str:
    """A message as a keyword: the whole text, trimmed of spaces, a leading ``/`` (a
    Telegram command) and trailing punctuation, case-folded ("Stop!" is STOP)."""
    return text.strip().lstrip("/").rstrip(".!").strip().casefold()


@dataclass(frozen=True)
class OptOut:
    enabled: bool
    stop_words: tuple[str, ...]
    start_words: tuple[str, ...]


def opt_out_settings(session: Session, organization_id: str) -> OptOut:
    row = repo.opt_out_row(session, organization_id)
    if row is None:
        return OptOut(True, DEFAULT_STOP, DEFAULT_START)
    return OptOut(row.enabled, tuple(row.stop_words), tuple(row.start_words))


def _words(raw: Sequence[object], field: str) -> list[str]:
    out: list[str] = []
    if len(raw) > MAX_WORDS:
        raise InvalidInput("invalid_keywords", f"at most {MAX_WORDS} keywords", field=field)
    for i, word in enumerate(raw):
        if not isinstance(word, str) or not keyword(word) or len(word.strip()) > MAX_WORD:
            raise InvalidInput(
                "invalid_keywords", f"a keyword is 1..{MAX_WORD} characters", field=f"{field}[{i}]"
            )
        if keyword(word) not in {keyword(w) for w in out}:
            out.append(word.strip())
    return out


def update_opt_out(
    session: Session,
    organization_id: str,
    *,
    enabled: bool | None = None,
    stop_words: Sequence[object] | None = None,
    start_words: Sequence[object] | None = None,
) -> OptOut:
    current = opt_out_settings(session, organization_id)
    stop = _words(stop_words, "stop_words") if stop_words is not None else list(current.stop_words)
    start = (
        _words(start_words, "start_words") if start_words is not None else list(current.start_words)
    )
    both = {keyword(w) for w in stop} & {keyword(w) for w in start}
    if both:
        raise InvalidInput(
            "invalid_keywords", f"{sorted(both)[0]!r} is both a stop and a start keyword"
        )
    row = repo.opt_out_row(session, organization_id, lock=True)
    if row is None:
        row = OptOutSettings(organization_id=organization_id)
        session.add(row)
    row.enabled = current.enabled if enabled is None else enabled
    row.stop_words, row.start_words, row.updated_at = stop, start, utcnow()
    session.flush()
    return OptOut(row.enabled, tuple(stop), tuple(start))


def opt_out(
    session: Session, organization_id: str, phone: str, text: str, channel: str
) -> str | None:
    """An inbound message from ``phone`` (E.164 digits) on any channel: a stop keyword
    puts the number on the block list (sends refused with 1019), a start keyword lifts
    an opt-out (not an administrator's block). "stop", "start" or None."""
    if not phone or not phone.isdigit() or not text or len(text) > 200:
        return None
    word = keyword(text)
    settings = opt_out_settings(session, organization_id)
    if not settings.enabled:
        return None
    if word in {keyword(w) for w in settings.stop_words}:
        if not repo.phones_by_number(session, organization_id, [phone]):
            repo.add(
                session,
                [
                    BlockedPhone(
                        organization_id=organization_id,
                        phone=phone,
                        reason=f"opt-out: {text.strip()[:64]} ({channel})",
                        via=channel,
                        created_at=utcnow(),
                    )
                ],
            )
        return "stop"
    if word in {keyword(w) for w in settings.start_words}:
        row = repo.phones_by_number(session, organization_id, [phone]).get(phone)
        if row is not None and row.via is not None:
            repo.delete(session, row)
        return "start"
    return None


# --- networks -------------------------------------------------------------------------


def _network(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("invalid_network", "an IP address or CIDR network", field=field)
    try:
        return str(ipaddress.ip_network(raw.strip(), strict=False))
    except ValueError:
        raise InvalidInput(
            "invalid_network", f"{raw!r} is not an IP address or CIDR network", field=field
        ) from None


def add_networks(
    session: Session, organization_id: str, networks: Sequence[object], reason: str | None
) -> list[BlockedNetwork]:
    wanted = list(dict.fromkeys(_network(n, f"networks[{i}]") for i, n in enumerate(networks)))
    have = {r.network: r for r in repo.networks(session, organization_id)}
    now = utcnow()
    new = [
        BlockedNetwork(organization_id=organization_id, network=n, reason=reason, created_at=now)
        for n in wanted
        if n not in have
    ]
    repo.add(session, new)
    have.update({r.network: r for r in new})
    return [have[n] for n in wanted]


def list_networks(session: Session, organization_id: str) -> Sequence[BlockedNetwork]:
    return repo.networks(session, organization_id)


def remove_network(session: Session, organization_id: str, row_id: int) -> None:
    row = repo.network(session, organization_id, row_id)
    if row is None:
        raise NotFound("blocked_network_not_found", f"no blocked network {row_id}")
    repo.delete(session, row)


# --- the IP check of a request ----------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    until: float
    networks: tuple[Network, ...]


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()


def forget(organization_id: str) -> None:
    """Drop the cached networks of an organization (after a change, in this process)."""
    with _lock:
        _cache.pop(organization_id, None)


def _networks(db: Database, organization_id: str) -> tuple[Network, ...]:
    now = time.monotonic()
    entry = _cache.get(organization_id)
    if entry is not None and entry.until > now:
        return entry.networks
    with db.read() as session:  # read-only: never waits for SQLite's write lock
        found = tuple(
            ipaddress.ip_network(r.network) for r in repo.networks(session, organization_id)
        )
    with _lock:
        _cache[organization_id] = _Entry(now + TTL, found)
    return found


def ip_blocked(db: Database, organization_id: str, ip: str | None) -> bool:
    """Is ``ip`` (the request's client address) on the organization's IP block list?"""
    networks = _networks(db, organization_id)
    if not networks or not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False  # not an IP (a test client's "testclient"): nothing to match
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:203.0.113.7 is 203.0.113.7
    return any(address.version == n.version and address in n for n in networks)
