"""Seed 004's channel designations (`vk`, `whatsapp-business`, ...) and omnirelay's
connections: which connection serves which designation, and the contact field a
designation addresses. The table is documented in docs/api/platform.md; keep them in step.

omnirelay's connection channels are seed 001's (`sms`, `viber`, `vk`, `telegram`) plus
the gateway's `whatsapp` devices. Each connection has exactly one designation, so that the
ids in `connections: [1, 2]` always mean one thing; designations with no omnirelay channel
behind them yet are known (a request may name them) but no connection serves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from omnirelay.connections import repository as repo
from omnirelay.connections.models import ChannelConnection
from omnirelay.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Designation:
    name: str  # as on the wire
    title: str  # the seed's name of the channel
    contact_field: str  # the digital profile's field with the recipient's id on it
    channel: str | None  # the omnirelay connection channel behind it (None: not yet)
    # For a channel served by two designations: the providers of this one (None: all the
    # others).
    providers: frozenset[str] | None = None


# The WhatsApp Business Platform (Cloud API) is "WhatsApp Business"; every other WhatsApp
# provider (the gateway's devices, seed 002) is "WhatsApp WEB".
BUSINESS_WHATSAPP = frozenset({"whatsapp_cloud"})
# A Viber bot (the REST Bot API) is "Viber - chatbots"; every other Viber provider (the
# sandbox, business messages by phone) is "Viber - business messages".
VIBER_BOTS = frozenset({"viber_bot"})

# In the seed's order (its list of channels).
DESIGNATIONS: tuple[Designation, ...] = (
    Designation("vk", "VKontakte", "vkId", "vk"),
    Designation("telegram", "Telegram", "telegramId", "telegram"),
    Designation("viber-bots", "Viber - chatbots", "viberId", "viber", VIBER_BOTS),
    Designation("instagram", "Instagram", "instagramId", None),
    Designation("fb", "Facebook Messenger", "fbId", None),
    Designation("whatsapp-business", "Whatsapp Business", "phone", "whatsapp", BUSINESS_WHATSAPP),
    Designation("whatsapp", "Whatsapp WEB", "phone", "whatsapp"),
    Designation("viber", "Viber - business messages", "phone", "viber"),
    Designation("sms", "SMS", "phone", "sms"),
    Designation("notify", "Notify", "phone", None),
    Designation("webchat", "Web chat", "id", "webchat"),
)
BY_NAME = {d.name: d for d in DESIGNATIONS}
NAMES = tuple(BY_NAME)


def get(name: str) -> Designation:
    """The designation called ``name``; a clear error for any other word."""
    found = BY_NAME.get(name)
    if found is None:
        raise InvalidInput(
            "invalid_channel",
            f"unknown channel {name!r}; one of {', '.join(NAMES)}",
            field="channel",
        )
    return found


def parse(name: str) -> list[Designation]:
    """A channel entry's ``name``: one designation or several joined by ``+`` (the seed's
    ``notify+vk``), in order, each once."""
    out: list[Designation] = []
    for part in name.split("+"):
        found = get(part.strip())
        if found not in out:
            out.append(found)
    return out


def _serves(designation: Designation, row: ChannelConnection) -> bool:
    if designation.channel != row.channel:
        return False
    if designation.providers is not None:
        return row.provider in designation.providers
    # The catch-all of a shared channel: no other designation claims the provider.
    return not any(
        d.channel == row.channel and d.providers is not None and row.provider in d.providers
        for d in DESIGNATIONS
    )


def of(row: ChannelConnection) -> str | None:
    """The designation a connection serves (None: its channel has none, e.g. email)."""
    for designation in DESIGNATIONS:
        if _serves(designation, row):
            return designation.name
    return None


def grouped(rows: Iterable[ChannelConnection]) -> dict[str, list[ChannelConnection]]:
    """Connections by designation, in the seed's order of designations, each list by id;
    designations without a connection are left out (as the seed's example does)."""
    groups: dict[str, list[ChannelConnection]] = {}
    for row in sorted(rows, key=lambda r: r.id):
        name = of(row)
        if name is not None:
            groups.setdefault(name, []).append(row)
    return {name: groups[name] for name in NAMES if name in groups}


def list_grouped(session: Session, organization_id: str) -> dict[str, list[ChannelConnection]]:
    return grouped(repo.list_for(session, organization_id))


def resolve(
    session: Session, organization_id: str, designations: Sequence[Designation], ids: Sequence[int]
) -> list[ChannelConnection]:
    """The connections a channel entry names by id, checked: each must be the caller's
    (another organization's id is "not found", like an unknown one), not deleted, and
    serve one of ``designations``."""
    out: list[ChannelConnection] = []
    for connection_id in ids:
        row = repo.get(session, organization_id, connection_id)
        if row is None:
            raise NotFound(
                "connection_not_found", f"no connection {connection_id}", field="connections"
            )
        if not any(_serves(d, row) for d in designations):
            names = "+".join(d.name for d in designations)
            raise InvalidInput(
                "connection_channel_mismatch",
                f"connection {connection_id} is a {of(row) or row.channel} connection, not {names}",
                field="connections",
            )
        if row not in out:
            out.append(row)
    return out
