"""Reading what Telegram sends a bot (Update objects, by webhook or getUpdates), the
webhook's secret token, and the ``/start`` deep links that tie a chat to a phone.

Deep link scheme (docs/channels/telegram.md): ``https://t.me/<bot>?start=<payload>``,
the payload ``p<phone digits>-<sig>`` or ``c<contact id>-<sig>``, ``sig`` the first 20
hex digits of HMAC-SHA256 keyed by the bot token over ``"omnirelay:<p|c><value>"``.
Only the organization (which holds the token) can make a link, so nobody can claim a
phone's messages by typing ``/start 79161234567``. A user sharing their own number
(a ``contact`` whose ``user_id`` is theirs) ties the chat to it too.

Pure functions: no network, no database; nothing here raises on a strange update.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

SECRET_HEADER = "x-telegram-bot-api-secret-token"
SIG_LENGTH = 20
_PAYLOAD = re.compile(r"([pc])([0-9a-f]{24}|\d{6,15})-([0-9a-f]{20})")


def verify_secret(header: str | None, secret: str | None) -> bool:
    """The webhook's ``X-Telegram-Bot-Api-Secret-Token`` equals the connection's secret
    (constant time). No secret configured, or no header: not verified."""
    if not secret or not header:
        return False
    return hmac.compare_digest(header.encode(), secret.encode())


def _sig(bot_token: str, kind: str, value: str) -> str:
    mac = hmac.new(bot_token.encode(), f"omnirelay:{kind}{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIG_LENGTH]


def start_payload(
    bot_token: str, *, phone: str | None = None, contact_id: str | None = None
) -> str:
    """The ``start`` parameter of a deep link for a phone (E.164 digits) or a contact."""
    if (phone is None) == (contact_id is None):
        raise ValueError("one of phone or contact_id")
    kind, value = ("p", phone) if phone is not None else ("c", contact_id)
    assert value is not None
    return f"{kind}{value}-{_sig(bot_token, kind, value)}"


@dataclass(frozen=True)
class StartLink:
    phone: str | None = None  # E.164 digits
    contact_id: str | None = None


def read_start(bot_token: str, payload: str) -> StartLink | None:
    """What a signed ``/start`` payload names; None when unsigned or forged."""
    match = _PAYLOAD.fullmatch(payload.strip())
    if match is None:
        return None
    kind, value, sig = match.groups()
    if (kind == "p") != value.isdigit() or not hmac.compare_digest(
        sig, _sig(bot_token, kind, value)
    ):
        return None
    return StartLink(phone=value) if kind == "p" else StartLink(contact_id=value)


@dataclass(frozen=True)
class TgFile:
    """A file a message carries, by Telegram's ``file_id`` (downloaded later: getFile)."""

    file_id: str
    name: str | None
    content_type: str | None
    size: int | None


@dataclass(frozen=True)
class Inbound:
    """One message a user sent the bot."""

    update_id: int
    chat_id: str
    private: bool  # a one-to-one chat (chat id = the user's id)
    user_id: str | None
    message_id: int | None
    text: str  # text or caption; "" for a message without one
    start: str | None = None  # the payload of "/start <payload>"
    shared_phone: str | None = None  # a contact the user shared of themselves, digits
    username: str | None = None
    name: str | None = None
    files: tuple[TgFile, ...] = ()  # a photo (its largest size), a document, ...


def _files(message: dict[str, Any]) -> tuple[TgFile, ...]:
    found: list[TgFile] = []
    photo = message.get("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):
        largest = photo[-1]  # Telegram lists a photo's sizes smallest first
        if isinstance(largest.get("file_id"), str):
            found.append(TgFile(largest["file_id"], "photo.jpg", "image/jpeg", _int(largest)))
    for kind in ("document", "video", "audio", "voice", "animation"):
        item = message.get(kind)
        if isinstance(item, dict) and isinstance(item.get("file_id"), str):
            name = item.get("file_name") if isinstance(item.get("file_name"), str) else None
            mime = item.get("mime_type") if isinstance(item.get("mime_type"), str) else None
            found.append(TgFile(item["file_id"], name, mime, _int(item)))
    return tuple(found)


def _int(item: dict[str, Any]) -> int | None:
    value = item.get("file_size")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def update_id(update: Any) -> int | None:
    value = update.get("update_id") if isinstance(update, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_update(update: Any) -> Inbound | None:
    """The message of an Update (``message``), or None for anything else."""
    uid = update_id(update)
    message = update.get("message") if isinstance(update, dict) else None
    if uid is None or not isinstance(message, dict):
        return None
    chat: dict[str, Any] = message["chat"] if isinstance(message.get("chat"), dict) else {}
    chat_id = chat.get("id")
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        return None
    sender: dict[str, Any] = message["from"] if isinstance(message.get("from"), dict) else {}
    user = sender.get("id")
    user_id = str(user) if isinstance(user, int) and not isinstance(user, bool) else None
    text = message.get("text")
    if not isinstance(text, str):
        caption = message.get("caption")
        text = caption if isinstance(caption, str) else ""
    start = None
    if text == "/start" or text.startswith("/start "):
        start = text[len("/start") :].strip() or None
    shared = None
    contact = message.get("contact")
    if isinstance(contact, dict) and user_id is not None:
        number = contact.get("phone_number")
        if str(contact.get("user_id")) == user_id and isinstance(number, str):
            digits = "".join(c for c in number if c.isdigit())
            shared = digits if 6 <= len(digits) <= 15 else None
    first = sender.get("first_name") if isinstance(sender.get("first_name"), str) else None
    username = sender.get("username") if isinstance(sender.get("username"), str) else None
    mid = message.get("message_id")
    return Inbound(
        update_id=uid,
        chat_id=str(chat_id),
        private=chat.get("type") == "private",
        user_id=user_id,
        message_id=mid if isinstance(mid, int) and not isinstance(mid, bool) else None,
        text=text,
        start=start,
        shared_phone=shared,
        username=username,
        name=first,
        files=_files(message),
    )


__all__ = [
    "SECRET_HEADER",
    "Inbound",
    "StartLink",
    "parse_update",
    "read_start",
    "start_payload",
    "update_id",
    "verify_secret",
]
