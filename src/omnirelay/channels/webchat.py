"""The ``webchat`` provider: omnirelay's own embeddable chat widget (ADR 35;
docs/channels/webchat.md).

A send is addressed to a visitor's ``webchatId`` (``extra["recipient"]``, found at accept
from the phone's contact through ``recipient_field``). The adapter hands the message to
this process's socket hub (webchat/hub.py): an open socket of the visitor here gets it
at once; sockets on other processes are woken by the notice the dispatch transaction
announces when it records the send (webchat/notices.py); the attempt stays ``sent`` and
a visitor not connected reads it from the database (webchat/service.pending) on their
next socket, until the step's ttl expires it.
The adapter never touches the database; statuses (delivered, read) come back from the
socket surface as provider events.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from omnirelay.channels.base import Outbound, PermanentError, SendResult, register
from omnirelay.webchat import hub, notices

KEYS = ("widget_key", "visitor_secret", "allowed_origins", "title", "colour")
_KEY = re.compile(r"wc_[A-Za-z0-9_-]{16,64}")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?|\*")
NO_VISITOR = 1010  # the phone has no contact with a webchatId
TEXT_ERROR = 1012


def validate(settings: dict[str, Any]) -> dict[str, Any]:
    """Parse and normalise; the widget key and the visitor-signing secret are made when
    absent (a PATCH keeps them: settings merge)."""
    if not isinstance(settings, dict):
        raise ValueError("settings must be an object")
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown webchat setting {unknown[0]!r}")
    key = settings.get("widget_key") or "wc_" + secrets.token_urlsafe(18)
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("widget_key must be wc_ and 16..64 letters, digits, - or _")
    secret = settings.get("visitor_secret") or secrets.token_urlsafe(32)
    if not isinstance(secret, str) or len(secret) < 32:
        raise ValueError("visitor_secret must be a string of at least 32 characters")
    origins = settings.get("allowed_origins")
    if not isinstance(origins, list) or not origins or len(origins) > 50:
        raise ValueError('allowed_origins must be a list of 1..50 origins ("https://shop.example")')
    clean: list[str] = []
    for origin in origins:
        if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin.rstrip("/").lower()):
            raise ValueError(f"allowed_origins: {str(origin)[:80]!r} is not scheme://host[:port]")
        clean.append(origin.rstrip("/").lower())
    title = settings.get("title", "Chat")
    if not isinstance(title, str) or not 1 <= len(title) <= 80:
        raise ValueError("title must be 1..80 characters")
    colour = settings.get("colour", "#2563eb")
    if not isinstance(colour, str) or not _COLOUR.fullmatch(colour):
        raise ValueError('colour must be "#rrggbb"')
    return {
        "widget_key": key,
        "visitor_secret": secret,
        "allowed_origins": clean,
        "title": title,
        "colour": colour.lower(),
    }


class WebchatAdapter:
    name = "webchat"
    recipient_field = "webchatId"
    channels: tuple[str, ...] = ("webchat",)

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return validate(settings)

    def send(self, message: Outbound) -> SendResult:
        visitor = message.extra.get("recipient")
        if not isinstance(visitor, str) or not visitor:
            raise PermanentError(
                "no web chat visitor for this phone", status="undelivered", code=NO_VISITOR
            )
        if not message.text:
            raise PermanentError("a web chat message needs a text", code=TEXT_ERROR)
        provider_id = f"wc:{message.message_id}:{message.try_number}"
        key = str(message.settings.get("widget_key", ""))
        # A socket of the visitor in this process gets it now; the others (any process)
        # when the dispatch's record of the send commits (its notice, ADR 44).
        hub.HUB.post(key, visitor, hub.outbound_frame(provider_id, message.text))
        notice = (notices.CHANNEL, notices.payload(key, visitor))
        return SendResult(provider_message_id=provider_id, notices=(notice,))


register(WebchatAdapter())
