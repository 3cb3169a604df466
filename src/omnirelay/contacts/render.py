"""Contacts as the seed shows them: channel ids, source objects, channels, timestamps,
variables ``{id, name, validateAs, value}`` (only those with a value)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.contacts import repository as repo
from omnirelay.contacts import values
from omnirelay.contacts.filters import CHANNELS
from omnirelay.contacts.models import CHANNEL_IDS, Contact, Variable

# Ids that are numbers on the wire (the seed's "vkId": 123456); the others are strings.
NUMERIC_IDS = {"vkId", "telegramId"}


def timestamp(moment: datetime) -> str:
    """ "2021-04-09T09:55:09.782Z", as the seed writes them."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def channels(contact: Contact) -> list[str]:
    return [name for name, column in CHANNELS.items() if getattr(contact, column) is not None]


def contact_fields(contact: Contact) -> dict[str, Any]:
    out: dict[str, Any] = {"id": contact.id}
    for wire, column in CHANNEL_IDS.items():
        value = getattr(contact, column)
        if value is None:
            continue
        out[wire] = int(value) if wire in NUMERIC_IDS and value.isdigit() else value
    out.update(contact.sources or {})
    out["channels"] = channels(contact)
    out["createdAt"] = timestamp(contact.created_at)
    out["updatedAt"] = timestamp(contact.updated_at)
    return out


def render_many(
    session: Session,
    contacts: Sequence[Contact],
    variables: Sequence[Variable],
) -> list[dict[str, Any]]:
    by_id = {v.id: v for v in variables}
    per_contact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in repo.values_of(session, [c.id for c in contacts]):
        var = by_id.get(row.variable_id)
        if var is None:
            continue
        value = values.render(var.validate_as, row.value_text, row.value_num, row.value_date)
        per_contact[row.contact_id].append(
            {"id": var.id, "name": var.name, "validateAs": var.validate_as, "value": value}
        )
    order = {v.id: i for i, v in enumerate(variables)}
    out = []
    for contact in contacts:
        item = contact_fields(contact)
        item["variables"] = sorted(per_contact[contact.id], key=lambda v: order[v["id"]])
        out.append(item)
    return out
