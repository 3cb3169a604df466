"""Local Viber peers for tests and benchmarks, answering as the providers document.

``ViberBotPeer``: the Viber REST Bot API. ``POST /pa/send_message`` and ``/pa/set_webhook``
with ``X-Viber-Auth-Token``; every answer is HTTP 200 with ``{"status", "status_message"}``
(0 ``ok``, 2 ``invalidAuthToken``, 3 ``badData``, 5 ``receiverNotRegistered``, 6
``receiverNotSubscribed``, 12 ``tooManyRequests`` when ``rate_limit`` is passed); a sent
message gets a ``message_token``. ``callback(...)`` builds a signed callback body
(``X-Viber-Content-Signature``) for a test to POST to /hooks.

``InfobipViberPeer``: Infobip's Viber Business Messages API. ``POST /viber/2/messages``
with ``Authorization: App <key>`` (401 ``UNAUTHORIZED`` otherwise; 400 ``BAD_REQUEST``
for a malformed message; 429 when ``rate_limit`` is passed); ``report``/``seen``/
``reply`` build the ``{"results": [...]}`` bodies Infobip POSTs, with Basic credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from typing import Any

from omnirelay.testing.httppeer import Answer, HttpPeer, PeerRequest

VIBER_TYPES = (
    "text",
    "picture",
    "video",
    "file",
    "location",
    "contact",
    "sticker",
    "url",
    "rich_media",
    "keyboard",
)


def _viber(status: int, message: str, **more: Any) -> Answer:
    return 200, {"status": status, "status_message": message, **more}, {}


class ViberBotPeer(HttpPeer):
    def __init__(
        self,
        *,
        auth_token: str = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f",
        lifetime: float = 300.0,
        rate_limit: float | None = None,
    ) -> None:
        super().__init__(lifetime=lifetime, rate_limit=rate_limit)
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []  # accepted send_message bodies
        self.webhooks: list[dict[str, Any]] = []  # set_webhook bodies
        self.not_subscribed: set[str] = set()
        self.not_registered: set[str] = set()
        self._tokens = itertools.count(5_741_311_803_571_721_087)
        # Files users sent, as Viber's CDN serves them: path -> (bytes, content type).
        self.files: dict[str, tuple[bytes, str]] = {}
        self.downloads: list[str] = []  # paths fetched

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "auth_token": self.auth_token,
            "sender_name": "Omni Bot",
            "base_url": self.base_url,
            **overrides,
        }

    def scripted(self, req: PeerRequest) -> bool:
        return req.path == "/pa/send_message"

    def media(self, data: bytes, name: str, content_type: str) -> str:
        """A file a user sends the bot: its URL (on this peer, as on Viber's CDN)."""
        path = f"/media/{secrets.token_hex(8)}/{name}"
        with self._lock:
            self.files[path] = (data, content_type)
        return self.base_url + path

    def route(self, req: PeerRequest) -> Answer:
        if req.method == "GET" and req.path in self.files:
            with self._lock:
                self.downloads.append(req.path)
            data, kind = self.files[req.path]
            return 200, data, {"Content-Type": kind}
        if req.method != "POST" or req.path not in ("/pa/send_message", "/pa/set_webhook"):
            return 404, b"Not Found", {"Content-Type": "text/plain"}
        if req.headers.get("x-viber-auth-token") != self.auth_token:
            return _viber(2, "invalidAuthToken")
        body = req.json()
        if not isinstance(body, dict):
            return _viber(3, "badData")
        if req.path == "/pa/set_webhook":
            if not isinstance(body.get("url"), str) or not body["url"].startswith("http"):
                return _viber(1, "invalidUrl")
            with self._lock:
                self.webhooks.append(body)
            return _viber(0, "ok", event_types=body.get("event_types", []))
        if self.over_limit():
            return _viber(12, "tooManyRequests")
        problem = _check(body)
        if problem is not None:
            return _viber(3, problem)
        receiver = body["receiver"]
        if receiver in self.not_registered:
            return _viber(5, "receiverNotRegistered")
        if receiver in self.not_subscribed:
            return _viber(6, "receiverNotSubscribed")
        with self._lock:
            self.messages.append(body)
            token = next(self._tokens)
        return _viber(0, "ok", message_token=token, chat_hostname="SN-CHAT-05_")

    # -- callbacks, as Viber sends them --

    def sign(self, body: bytes) -> dict[str, str]:
        signature = hmac.new(self.auth_token.encode(), body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}

    def callback(self, event: str, **fields: Any) -> tuple[bytes, dict[str, str]]:
        """A signed callback: ``delivered``/``seen``/``failed`` (``message_token``,
        ``user_id``, ``desc``), ``message`` (``sender_id``, ``text``, ``tracking_data``,
        ``phone`` for a shared contact; ``media`` (a URL of ``media()``) with ``kind``
        picture/video/file, ``file_name``, ``size``), ``subscribed``, ``conversation_started``
        (``user_id``, ``context``), ``unsubscribed``, ``webhook``."""
        now = int(time.time() * 1000)
        body: dict[str, Any] = {"event": event, "timestamp": now, "chat_hostname": "SN-CHAT-05_"}
        token = fields.get("message_token", secrets.randbelow(2**62))
        if event in ("delivered", "seen", "failed"):
            body.update(message_token=int(token), user_id=fields["user_id"])
            if event == "failed":
                body["desc"] = fields.get("desc", "failed")
        elif event == "message":
            message: dict[str, Any] = {"type": "text", "text": fields.get("text", "")}
            if fields.get("phone"):
                message = {
                    "type": "contact",
                    "contact": {"name": "U", "phone_number": fields["phone"]},
                }
            if fields.get("media"):
                message = {"type": fields.get("kind", "picture"), "media": fields["media"]}
                message.update({"text": fields["text"]} if fields.get("text") else {})
                for key in ("file_name", "size"):
                    if key in fields:
                        message[key] = fields[key]
            if fields.get("tracking_data"):
                message["tracking_data"] = fields["tracking_data"]
            body.update(
                message_token=int(token),
                sender=_user(fields["sender_id"]),
                message=message,
                silent=False,
            )
        elif event in ("subscribed", "conversation_started"):
            body.update(message_token=int(token), user=_user(fields["user_id"]))
            if event == "conversation_started":
                body.update(type="open", subscribed=False, context=fields.get("context", ""))
        elif event == "unsubscribed":
            body.update(message_token=int(token), user_id=fields["user_id"])
        elif event == "webhook":
            body["message_token"] = int(token)
        raw = json.dumps(body).encode()
        return raw, self.sign(raw)


def _user(user_id: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": "Viber User",
        "avatar": "http://avatar.example/u.jpg",
        "country": "UA",
        "language": "en",
        "api_version": 10,
    }


def _check(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("receiver"), str) or not body["receiver"]:
        return "receiver is required"
    sender = body.get("sender")
    if not isinstance(sender, dict) or not isinstance(sender.get("name"), str):
        return "sender.name is required"
    if len(sender["name"]) > 28:
        return "sender.name is at most 28 characters"
    kind = body.get("type")
    if kind not in VIBER_TYPES:
        return f"unknown type {kind!r}"
    if kind == "text" and not (isinstance(body.get("text"), str) and body["text"]):
        return "text is required"
    if kind in ("picture", "video", "file") and not isinstance(body.get("media"), str):
        return "media is required"
    if kind in ("video", "file"):
        size = body.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            return "size is required"
        if size > (26 if kind == "video" else 50) * 1024 * 1024:
            return "media is too big"
    if kind == "file":
        name = body.get("file_name")
        if not isinstance(name, str) or not 1 <= len(name) <= 256:
            return "file_name is required"
    if kind == "rich_media":
        problem = _check_rich_media(body)
        if problem is not None:
            return problem
    keyboard = body.get("keyboard")
    if keyboard is not None:
        if not isinstance(keyboard, dict) or keyboard.get("Type") != "keyboard":
            return "keyboard.Type must be keyboard"
        buttons = keyboard.get("Buttons")
        if not isinstance(buttons, list) or not buttons:
            return "keyboard.Buttons is required"
        for b in buttons:
            if not isinstance(b, dict) or not b.get("ActionBody"):
                return "a button needs ActionBody"
    return None


def _check_rich_media(body: dict[str, Any]) -> str | None:
    """A carousel: ``rich_media`` {Type, ButtonsGroupColumns 1..6, ButtonsGroupRows 1..7,
    Buttons}: every button fits a card, the cards are whole, at most 6 of them; the body
    asks for min_api_version 2 or later."""
    if not isinstance(body.get("min_api_version"), int) or body["min_api_version"] < 2:
        return "rich_media needs min_api_version 2"
    rich = body.get("rich_media")
    if not isinstance(rich, dict) or rich.get("Type") != "rich_media":
        return "rich_media.Type must be rich_media"
    columns, rows = rich.get("ButtonsGroupColumns", 6), rich.get("ButtonsGroupRows", 7)
    if not (isinstance(columns, int) and 1 <= columns <= 6 and isinstance(rows, int)):
        return "ButtonsGroupColumns is 1..6"
    if not 1 <= rows <= 7:
        return "ButtonsGroupRows is 1..7"
    buttons = rich.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        return "rich_media.Buttons is required"
    cells = 0
    for b in buttons:
        if not isinstance(b, dict):
            return "a button is an object"
        w, h = b.get("Columns", 6), b.get("Rows", 1)
        if not (isinstance(w, int) and isinstance(h, int) and 1 <= w <= columns and 1 <= h <= rows):
            return "a button does not fit its card"
        if b.get("ActionType", "reply") != "none" and not b.get("ActionBody"):
            return "a button needs ActionBody"
        cells += w * h
    if cells % (columns * rows) or cells // (columns * rows) > 6:
        return "rich_media is 1..6 whole cards"
    return None


# --- Infobip --------------------------------------------------------------------------------


def _infobip_error(status: int, message_id: str, text: str) -> Answer:
    return (
        status,
        {"requestError": {"serviceException": {"messageId": message_id, "text": text}}},
        {},
    )


class InfobipViberPeer(HttpPeer):
    def __init__(
        self,
        *,
        api_key: str = "0b2c5a7e-infobip-key",
        webhook_secret: str = "ib-hook-secret",
        lifetime: float = 300.0,
        rate_limit: float | None = None,
    ) -> None:
        super().__init__(lifetime=lifetime, rate_limit=rate_limit)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.messages: list[dict[str, Any]] = []

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "webhook_secret": self.webhook_secret,
            "base_url": self.base_url,
            **overrides,
        }

    def scripted(self, req: PeerRequest) -> bool:
        return req.path == "/viber/2/messages"

    def route(self, req: PeerRequest) -> Answer:
        if req.method != "POST" or req.path != "/viber/2/messages":
            return _infobip_error(404, "NOT_FOUND", "Requested URL not found")
        if req.headers.get("authorization") != f"App {self.api_key}":
            return _infobip_error(401, "UNAUTHORIZED", "Invalid login details")
        if self.over_limit():
            return _infobip_error(429, "TOO_MANY_REQUESTS", "Too many requests")
        body = req.json()
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return _infobip_error(400, "BAD_REQUEST", "messages is required")
        out = []
        for message in messages:
            problem = _check_infobip(message)
            if problem is not None:
                return _infobip_error(400, "BAD_REQUEST", problem)
            with self._lock:
                self.messages.append(message)
            for dest in message["destinations"]:
                out.append(
                    {
                        "messageId": dest.get("messageId") or str(uuid.uuid4()),
                        "status": {
                            "groupId": 1,
                            "groupName": "PENDING",
                            "id": 26,
                            "name": "PENDING_ACCEPTED",
                            "description": "Message sent to next instance",
                        },
                        "destination": dest["to"],
                    }
                )
        return 200, {"bulkId": str(uuid.uuid4()), "messages": out}, {}

    # -- callbacks, as Infobip sends them --

    def auth(self, secret: str | None = None) -> dict[str, str]:
        token = base64.b64encode(f"infobip:{secret or self.webhook_secret}".encode()).decode()
        return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}

    def report(
        self, message_id: str, to: str, group: str = "DELIVERED", error: str | None = None
    ) -> bytes:
        groups = {
            "DELIVERED": (3, 5, "DELIVERED_TO_HANDSET"),
            "UNDELIVERABLE": (2, 9, "UNDELIVERABLE_NOT_DELIVERED"),
            "EXPIRED": (4, 15, "EXPIRED_EXPIRED"),
            "REJECTED": (5, 12, "REJECTED_NOT_ENOUGH_CREDITS"),
        }
        gid, sid, name = groups[group]
        item: dict[str, Any] = {
            "bulkId": str(uuid.uuid4()),
            "messageId": message_id,
            "to": to,
            "sentAt": "2026-12-01T10:00:00.000+0000",
            "doneAt": "2026-12-01T10:00:01.000+0000",
            "messageCount": 1,
            "status": {
                "groupId": gid,
                "groupName": group,
                "id": sid,
                "name": name,
                "description": name,
            },
            "error": {
                "groupId": 0,
                "groupName": "OK",
                "id": 0,
                "name": "NO_ERROR",
                "description": "No Error",
                "permanent": False,
            },
            "channel": "VIBER_BM",
        }
        if error is not None:
            item["error"] = {
                "groupId": 1,
                "groupName": "HANDSET_ERRORS",
                "id": 7001,
                "name": error,
                "description": error,
                "permanent": True,
            }
        return json.dumps({"results": [item]}).encode()

    def seen(self, message_id: str, to: str) -> bytes:
        item = {
            "messageId": message_id,
            "to": to,
            "from": "Omni",
            "sentAt": "2026-12-01T10:00:00.000+0000",
            "seenAt": "2026-12-01T10:00:05.000+0000",
        }
        return json.dumps({"results": [item]}).encode()

    def reply(self, sender: str, to: str, text: str) -> bytes:
        item = {
            "sender": sender,
            "to": to,
            "integrationType": "VIBER",
            "receivedAt": "2026-12-01T10:01:00.000+0000",
            "messageId": str(uuid.uuid4()),
            "message": {"type": "TEXT", "text": text},
            "price": {"pricePerMessage": 0, "currency": "EUR"},
        }
        return json.dumps({"results": [item], "messageCount": 1, "pendingMessageCount": 0}).encode()


def _check_infobip(message: Any) -> str | None:
    if not isinstance(message, dict) or not isinstance(message.get("sender"), str):
        return "sender is required"
    dests = message.get("destinations")
    if (
        not isinstance(dests, list)
        or not dests
        or not all(
            isinstance(d, dict) and isinstance(d.get("to"), str) and d["to"].isdigit()
            for d in dests
        )
    ):
        return "destinations[].to must be a phone number"
    content = message.get("content")
    if not isinstance(content, dict) or content.get("type") not in (
        "TEXT",
        "IMAGE",
        "VIDEO",
        "FILE",
        "TEMPLATE",
    ):
        return "content.type is invalid"
    if content["type"] == "TEXT" and not content.get("text"):
        return "content.text is required"
    if content["type"] == "IMAGE" and not content.get("url"):
        return "content.url is required"
    return None
