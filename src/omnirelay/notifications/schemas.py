"""A notification request as the service takes it, and the rules checked without the
database: one of phone / contactId, the channel entries, ttl, attachments per channel."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any

from omnirelay.connections import designations
from omnirelay.connections.designations import Designation
from omnirelay.errors import InvalidInput
from omnirelay.messaging.validation import TTL

MAX_TEXT = 4096
MAX_CHANNELS = 10  # entries, as a /v3 route's steps
MAX_ATTACHMENTS = 10
MAX_URL = 2000
KINDS = ("image", "video", "audio", "file")
# designation -> (how many attachments, which kinds; None: any). Seed 004: Notify and SMS
# take none, Instagram and Viber business messages one image; the rest up to ten.
ATTACHMENT_RULES: dict[str, tuple[int, frozenset[str] | None]] = {
    "notify": (0, None),
    "sms": (0, None),
    "instagram": (1, frozenset({"image"})),
    "viber": (1, frozenset({"image"})),
}
DEFAULT_RULE: tuple[int, frozenset[str] | None] = (MAX_ATTACHMENTS, None)
MESSENGER_TTL = (60, 86400, 600)  # designations with no /v3 channel behind them


@dataclass(frozen=True)
class Attachment:
    url: str
    kind: str  # image | video | audio | file
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "type": self.kind}
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Entry:
    """One element of ``channels``: its designations in order, the connections it names
    (none: the organization's), its ttl in seconds (None: each channel's default)."""

    designations: tuple[Designation, ...]
    connections: tuple[int, ...]
    ttl: int | None
    field: str  # where it came from, for errors: "channels.0"


@dataclass(frozen=True)
class Request:
    phone: Any | None  # as given; the contact service normalises it
    contact_id: str | None
    text: str
    attachments: tuple[Attachment, ...]
    channels: tuple[Entry, ...] | None  # None: the organization's default cascade


def ttl_limits(d: Designation) -> tuple[int, int, int]:
    return TTL.get(d.channel or "", MESSENGER_TTL)


def allows(d: Designation, attachments: tuple[Attachment, ...]) -> str | None:
    """Why ``d`` cannot carry ``attachments`` (None: it can)."""
    if not attachments:
        return None
    most, kinds = ATTACHMENT_RULES.get(d.name, DEFAULT_RULE)
    if most == 0:
        return f"{d.name} takes no attachments"
    if len(attachments) > most:
        return f"{d.name} takes at most {most} attachment{'s' if most > 1 else ''}"
    if kinds is not None and any(a.kind not in kinds for a in attachments):
        return f"{d.name} takes only {' or '.join(sorted(kinds))} attachments"
    return None


def attachment(raw: Any, where: str) -> Attachment:
    """``"https://..."`` or ``{url, type?, name?}``; the kind from ``type``, else guessed
    from the link's extension (an unknown one is a file)."""
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict):
        raise InvalidInput("invalid_attachment", f"{where}: a URL or {{url, type?}}", field=where)
    url = raw.get("url")
    if not _is_http(url):
        raise InvalidInput(
            "invalid_attachment", f"{where}.url: an http(s) URL", field=f"{where}.url"
        )
    assert isinstance(url, str)
    kind = raw.get("type")
    if kind is None or kind == "":
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        top = (guessed or "").split("/", 1)[0]
        kind = top if top in ("image", "video", "audio") else "file"
    if kind == "document":
        kind = "file"
    if kind not in KINDS:
        raise InvalidInput(
            "invalid_attachment",
            f"{where}.type: one of {', '.join(KINDS)}",
            field=f"{where}.type",
        )
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 255):
        raise InvalidInput(
            "invalid_attachment", f"{where}.name: up to 255 characters", field=f"{where}.name"
        )
    return Attachment(url, kind, name or None)


def _is_http(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(("http://", "https://"))
        and len(value) <= MAX_URL
        and not any(c.isspace() for c in value)
        and len(value.split("://", 1)[1]) > 0
    )


def entry(name: str, connections: list[int], ttl: int | None, where: str) -> Entry:
    try:
        parsed = tuple(designations.parse(name))
    except InvalidInput as exc:
        raise InvalidInput(exc.code, f"{where}.name: {exc.message}", field=f"{where}.name") from exc
    if ttl is not None:
        for d in parsed:
            low, high, _ = ttl_limits(d)
            if not low <= ttl <= high:
                raise InvalidInput(
                    "invalid_ttl",
                    f"{where}.ttl: {d.name} takes {low}..{high} seconds",
                    field=f"{where}.ttl",
                )
    return Entry(parsed, tuple(dict.fromkeys(connections)), ttl, where)


def request(
    *,
    phone: Any | None,
    contact_id: str | None,
    text: str,
    attachments: list[Any],
    channels: list[tuple[str, list[int], int | None]] | None,
) -> Request:
    """The checks that need no database; the rest (contact, connections, templates) are
    the service's."""
    has_phone = phone is not None and phone != ""
    has_contact = contact_id is not None and contact_id != ""
    if has_phone == has_contact:
        raise InvalidInput(
            "phone_or_contact",
            "Give exactly one of phone and contactId",
            field="contactId" if has_contact else "phone",
        )
    if not text.strip():
        raise InvalidInput("missing_field", 'No field "message.text"', field="message.text")
    if len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(
            "invalid_attachment",
            f"message.attachments: at most {MAX_ATTACHMENTS}",
            field="message.attachments",
        )
    files = tuple(attachment(a, f"message.attachments.{i}") for i, a in enumerate(attachments))
    entries: tuple[Entry, ...] | None = None
    if channels is not None:
        if not channels:
            raise InvalidInput(
                "invalid_field", "channels: at least one entry (or leave it out)", field="channels"
            )
        if len(channels) > MAX_CHANNELS:
            raise InvalidInput(
                "invalid_field", f"channels: at most {MAX_CHANNELS} entries", field="channels"
            )
        entries = tuple(
            entry(name, ids, ttl, f"channels.{i}") for i, (name, ids, ttl) in enumerate(channels)
        )
        # Named channels must take the attachments: a clear error now, not a surprise later.
        for e in entries:
            for d in e.designations:
                why = allows(d, files)
                if why is not None:
                    raise InvalidInput(
                        "attachments_not_allowed",
                        f"{e.field}.name: {why}",
                        field="message.attachments",
                    )
    return Request(
        phone if has_phone else None,
        contact_id if has_contact else None,
        text,
        files,
        entries,
    )
