"""Callback-server events of contacts, emitted in the caller's transaction.

Seed 004 names these events with ``type`` (the other callback-server events carry
``name``); the body has both, so a receiver written for either finds it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from omnirelay.webhooks import service as webhooks
from omnirelay.webhooks.models import WebhookSettings

CREATED = "contact_created"
UPDATED = "contact_updated"
MERGED = "contact_merged"


def _emit(session: Session, organization_id: str, event: str, data: Any) -> None:
    row = session.get(WebhookSettings, organization_id)
    if row is None or not row.callback_url:
        return
    body: dict[str, Any] = {"type": event, "name": event, "data": data}
    if row.callback_secret is not None:
        body["secret"] = row.callback_secret
    webhooks.emit(session, organization_id, row.callback_url, event, body)


def created(session: Session, organization_id: str, contacts: list[dict[str, Any]]) -> None:
    if contacts:  # one event per call: data is always an array (the seed)
        _emit(session, organization_id, CREATED, contacts)


def updated(session: Session, organization_id: str, contact: dict[str, Any]) -> None:
    _emit(session, organization_id, UPDATED, contact)


def merged(
    session: Session, organization_id: str, preserved: dict[str, Any], deleted: dict[str, Any]
) -> None:
    _emit(
        session,
        organization_id,
        MERGED,
        {"preservedContact": preserved, "deletedContact": deleted},
    )


def callback_configured(session: Session, organization_id: str) -> bool:
    row = session.get(WebhookSettings, organization_id)
    return row is not None and bool(row.callback_url)
