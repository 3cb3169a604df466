"""Channel connections: create, change, remove, and find the one a route step uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.channels.base import get_adapter
from omnirelay.channels.smtp.addresses import normalize as normalize_address
from omnirelay.connections import repository as repo
from omnirelay.connections.models import (
    CHANNELS,
    DEVICE_CHANNELS,
    OWN_CHANNELS,
    ChannelConnection,
    ConnectionStatus,
)
from omnirelay.db import utcnow
from omnirelay.errors import InvalidInput, NotFound

SANDBOX_SENDERS = {
    "sms": ["SANDBOX"],
    "viber": ["SANDBOX"],
    "vk": ["1"],
    "telegram": ["SANDBOX"],  # the bot: offered by /v3/senders, usable as `sender`
}


def _check(channel: str, provider: str, settings: dict[str, Any]) -> dict[str, Any]:
    if channel not in CHANNELS + DEVICE_CHANNELS + OWN_CHANNELS:
        raise InvalidInput(
            "invalid_channel",
            f"channel must be one of {', '.join(CHANNELS + DEVICE_CHANNELS + OWN_CHANNELS)}",
            field="channel",
        )
    adapter = get_adapter(provider)
    if adapter is None:
        raise InvalidInput("invalid_provider", f"unknown provider {provider!r}", field="provider")
    if channel not in adapter.channels:
        raise InvalidInput(
            "invalid_provider",
            f"provider {provider} does not serve channel {channel}",
            field="provider",
        )
    try:
        return adapter.validate_settings(settings)
    except ValueError as exc:
        raise InvalidInput("invalid_settings", str(exc), field="settings") from exc


def _senders(channel: str, senders: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in senders:
        s = s.strip()
        if not s or len(s) > 100:
            raise InvalidInput("invalid_sender", "a sender is 1..100 characters", field="senders")
        if channel == "vk" and not s.isdigit():
            raise InvalidInput("invalid_sender", "VK senders are group ids", field="senders")
        if channel == "email":
            try:
                s = normalize_address(s)  # a from address the connection may send as
            except ValueError as exc:
                raise InvalidInput("invalid_sender", f"sender: {exc}", field="senders") from None
        if s not in out:
            out.append(s)
    return out


def create(
    session: Session,
    organization_id: str,
    *,
    channel: str,
    provider: str,
    name: str,
    settings: dict[str, Any],
    senders: Sequence[str],
    active: bool = True,
    templates_only: bool = False,
) -> ChannelConnection:
    stored = _check(channel, provider, settings)
    if channel == "email" and stored.get("from_address"):
        # The from address is a sender of its connection: a step's ``sender`` may name it.
        senders = [stored["from_address"], *senders]
    return repo.add(
        session,
        ChannelConnection(
            organization_id=organization_id,
            channel=channel,
            provider=provider,
            name=name,
            settings=stored,
            senders=_senders(channel, senders),
            active=active,
            templates_only=templates_only,
        ),
    )


def get(session: Session, organization_id: str, connection_id: int) -> ChannelConnection:
    row = repo.get(session, organization_id, connection_id)
    if row is None:
        raise NotFound("connection_not_found", f"no connection {connection_id}")
    return row


def list_connections(
    session: Session, organization_id: str, channel: str | None = None
) -> Sequence[ChannelConnection]:
    return repo.list_for(session, organization_id, channel)


def update(
    session: Session, organization_id: str, connection_id: int, changes: dict[str, Any]
) -> ChannelConnection:
    row = get(session, organization_id, connection_id)
    if changes.get("settings") is not None:
        # Secrets shown masked come back unchanged when a client round-trips the object.
        # PATCH merges: keys not sent keep their values.
        merged = dict(row.settings)
        for key, value in changes["settings"].items():
            if value != "***":
                merged[key] = value
        row.settings = _check(row.channel, row.provider, merged)
    if changes.get("senders") is not None:
        row.senders = _senders(row.channel, changes["senders"])
    for key in ("name", "active", "templates_only"):
        if changes.get(key) is not None:
            setattr(row, key, changes[key])
    row.updated_at = utcnow()
    session.flush()
    return row


def rebind(
    session: Session,
    organization_id: str,
    connection_id: int,
    provider: str,
    settings: dict[str, Any],
) -> ChannelConnection:
    """Another provider (and its whole settings) for the same connection: a gateway
    device moving from the sandbox to the Cloud API keeps its connection and messages."""
    row = get(session, organization_id, connection_id)
    row.settings = _check(row.channel, provider, settings)
    row.provider = provider
    row.updated_at = utcnow()
    session.flush()
    return row


def delete(session: Session, organization_id: str, connection_id: int) -> None:
    # Soft delete: attempts keep pointing at the connection that sent them.
    row = get(session, organization_id, connection_id)
    row.deleted_at = utcnow()
    row.active = False
    session.flush()


def provision_sandbox(session: Session, organization_id: str) -> list[ChannelConnection]:
    """Every new organization starts with a sandbox connection per channel."""
    return [
        create(
            session,
            organization_id,
            channel=channel,
            provider="sandbox",
            name=f"Sandbox {channel}",
            settings={},
            senders=SANDBOX_SENDERS[channel],
        )
        for channel in CHANNELS
    ]


def session_status(session: Session, connection_id: int) -> ConnectionStatus | None:
    return repo.status(session, connection_id)


def record_status(session: Session, connection_id: int, state: str, last_error: str | None) -> None:
    """What a provider said when the connection was set up (a webhook registered)."""
    row = repo.status(session, connection_id)
    if row is None:
        row = ConnectionStatus(connection_id=connection_id, state=state)
        session.add(row)
    row.state, row.last_error, row.updated_at = state, last_error, utcnow()
    session.flush()
