"""A local WhatsApp Business Cloud API for tests: answers as Meta documents the API, on
127.0.0.1, and sends the webhook notifications Meta would send.

    with CloudApiPeer() as peer:
        settings = {"phone_number_id": peer.phone_number_id,
                    "access_token": peer.access_token, "base_url": peer.base_url}
        ...
        peer.messages  # every accepted message body, in order

- ``POST /{version}/{phone_number_id}/messages``: a ``Bearer`` token is required (401, code
  190 otherwise); an unknown phone number ID gets the Graph "object does not exist" error
  (400, code 100, subcode 33); a malformed body gets 400, code 100, with ``details``; an
  accepted one is recorded and answered ``{"messaging_product", "contacts", "messages":
  [{"id": "wamid..."}]}``.
- ``GET /{version}/{phone_number_id}?fields=...``: the number's fields.
- ``script(body, n)``, called for the n-th (from 1) authorised ``messages`` POST, may
  return ``(status, body, headers)`` to answer instead (``graph_error`` builds Cloud API
  errors); ``delay`` holds every answer back that many seconds.
- ``post_status`` / ``post_inbound`` POST signed notifications to a URL.

The server, its bounds (request bodies, records kept), ``drop``, ``start_chaos`` (random
drops and 500s) and its lifetime are testing/httppeer.py's.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from omnirelay.testing.httppeer import Answer, HttpPeer, PeerRequest

Script = Callable[[Any, int], Answer | None]

MAX_RECORDS = 10_000
MEDIA = ("image", "video", "audio", "document", "sticker")
CAPTIONED = ("image", "video", "document")
OTHER_TYPES = ("template", "interactive", "reaction", "contacts")  # accepted, not checked
_VERSION = re.compile(r"v\d+\.\d+")
_PHONE = re.compile(r"\+?\d{6,15}")


def graph_error(
    code: int,
    message: str,
    *,
    http_status: int = 400,
    details: str | None = None,
    type_: str = "OAuthException",
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """A Graph / Cloud API error answer: ``{"error": {message, type, code, error_data,
    fbtrace_id}}``; the message carries the code as the API writes it, ``(#code) ...``."""
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}" if code not in (190, 2500) else message,
        "type": type_,
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(12),
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return http_status, {"error": error}, dict(headers or {})


def _invalid(details: str) -> Answer:
    return graph_error(100, "Invalid parameter", details=details)


class CloudApiPeer(HttpPeer):
    max_body = 1 << 20
    max_records = MAX_RECORDS

    def __init__(
        self,
        *,
        phone_number_id: str = "106540352242922",
        access_token: str = "EAAG-peer-token",
        display_phone_number: str = "+1 555-078-3881",
        verified_name: str = "Omnirelay Test",
        quality_rating: str = "GREEN",
        waba_id: str = "102290129340398",
        app_secret: str | None = "peer-app-secret",
        lifetime: float = 300.0,
    ) -> None:
        super().__init__(lifetime=lifetime)
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.display_phone_number = display_phone_number
        self.verified_name = verified_name
        self.quality_rating = quality_rating
        self.waba_id = waba_id
        self.app_secret = app_secret
        self.script: Script | None = None
        self.messages: list[dict[str, Any]] = []  # accepted message bodies
        # Media users sent: id -> (bytes, mime type); the ids of downloads served.
        self.media: dict[str, tuple[bytes, str]] = {}
        self.downloads: list[str] = []
        self._posts = itertools.count(1)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """whatsapp_cloud connection settings pointing at this peer."""
        return {
            "phone_number_id": self.phone_number_id,
            "access_token": self.access_token,
            "base_url": self.base_url,
            **({"app_secret": self.app_secret} if self.app_secret else {}),
            **overrides,
        }

    # -- the peer's hooks --

    def scripted(self, req: PeerRequest) -> bool:
        return req.method == "POST" and urlsplit(req.path).path.endswith("/messages")

    def intercept(self, req: PeerRequest) -> Answer | str | None:
        return None  # scripts see the parsed body of an authorised send (_send)

    def server_error(self) -> Answer:
        return graph_error(1, "An unknown error occurred", http_status=500)

    def too_large(self) -> Answer:
        return graph_error(100, "Request body too large", http_status=413)

    # -- the API --

    def user_media(self, data: bytes, mime_type: str) -> str:
        """A file a user sends: its media id (``GET /<version>/<id>`` tells its URL)."""
        media_id = str(secrets.randbelow(10**15) + 10**15)
        with self._lock:
            self.media[media_id] = (data, mime_type)
        return media_id

    def _media(self, req: PeerRequest, segments: list[str]) -> Answer | None:
        """The media endpoints: the lookup by id, and the download URL it answers (on
        the API's CDN host in production; the token is required on both)."""
        download = segments[:1] == ["media-download"] and len(segments) == 2
        lookup = len(segments) == 2 and segments[1] in self.media and req.method == "GET"
        if not (download or lookup):
            return None
        if req.headers.get("authorization") != f"Bearer {self.access_token}":
            return graph_error(190, "Invalid OAuth access token", http_status=401)
        found = self.media.get(segments[1])
        if found is None:
            return 404, b"", {"Content-Type": "text/plain"}
        data, mime = found
        if download:
            with self._lock:
                self.downloads.append(segments[1])
            return 200, data, {"Content-Type": mime}
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "url": f"{self.base_url}/media-download/{segments[1]}",
                "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": str(len(data)),
                "id": segments[1],
            },
            {},
        )

    def route(self, req: PeerRequest) -> Answer:
        parts = urlsplit(req.path)
        segments = [s for s in parts.path.split("/") if s]
        media = self._media(req, segments)
        if media is not None:
            return media
        if len(segments) < 2 or not _VERSION.fullmatch(segments[0]):
            return graph_error(
                2500, f"Unknown path components: {parts.path}", details=None, http_status=400
            )
        if req.headers.get("authorization") != f"Bearer {self.access_token}":
            return graph_error(
                190,
                "Invalid OAuth access token - Cannot parse access token",
                http_status=401,
                headers={
                    "WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token" '
                    '"Invalid OAuth access token - Cannot parse access token"'
                },
            )
        if segments[1] != self.phone_number_id:
            return graph_error(
                100,
                f"Unsupported {req.method.lower()} request. Object with ID '{segments[1]}' "
                "does not exist, cannot be loaded due to missing permissions, or does not "
                "support this operation",
                type_="GraphMethodException",
                subcode=33,
            )
        if req.method == "GET" and len(segments) == 2:
            return self._phone_number(parse_qs(parts.query).get("fields", [""])[0])
        if req.method == "POST" and segments[2:] == ["messages"]:
            return self._send(req.body)
        return graph_error(2500, f"Unknown path components: /{'/'.join(segments[2:])}")

    def _phone_number(self, fields: str) -> Answer:
        known = {
            "id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "verified_name": self.verified_name,
            "quality_rating": self.quality_rating,
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
        }
        asked = [f.strip() for f in fields.split(",") if f.strip()] or [
            "display_phone_number",
            "verified_name",
            "quality_rating",
        ]
        for name in asked:
            if name not in known:
                return graph_error(100, f"Tried accessing nonexisting field ({name})", subcode=None)
        return 200, {**{k: known[k] for k in asked}, "id": self.phone_number_id}, {}

    def _send(self, raw: bytes) -> Answer:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        n = next(self._posts)
        script = self.script
        if script is not None:
            scripted = script(body, n)
            if scripted is not None:
                return scripted
        problem = _check_message(body)
        if problem is not None:
            return problem
        assert isinstance(body, dict)
        with self._lock:
            self.messages.append(body)
            del self.messages[:-MAX_RECORDS]
        wamid = "wamid." + secrets.token_urlsafe(27)
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"].lstrip("+")}],
                "messages": [{"id": wamid}],
            },
            {},
        )

    # -- webhooks, as Meta sends them --

    def status_payload(
        self,
        message_id: str,
        status: str,
        *,
        recipient: str = "16505551234",
        error: tuple[int, str] | None = None,
        timestamp: int | None = None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(timestamp or int(time.time())),
            "recipient_id": recipient,
        }
        if status in ("sent", "delivered"):
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
        if error is not None:
            code, title = error
            item["errors"] = [
                {
                    "code": code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": title},
                }
            ]
        return self._envelope({"statuses": [item]})

    def inbound_payload(
        self,
        from_: str,
        text: str,
        *,
        name: str = "Test User",
        message_id: str | None = None,
        timestamp: int | None = None,
        media: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A text message, or with ``media`` ({type: image|document|..., id, mime_type,
        filename?}) a media message whose caption is ``text``."""
        item: dict[str, Any] = {
            "from": from_,
            "id": message_id or "wamid." + secrets.token_urlsafe(27),
            "timestamp": str(timestamp or int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
        if media is not None:
            kind = media["type"]
            part = {k: v for k, v in media.items() if k != "type"}
            part.update({"caption": text} if text else {})
            item.pop("text")
            item.update({"type": kind, kind: part})
        return self._envelope(
            {"contacts": [{"profile": {"name": name}, "wa_id": from_}], "messages": [item]}
        )

    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        digits = "".join(c for c in self.display_phone_number if c.isdigit())
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": self.waba_id,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": digits,
                                    "phone_number_id": self.phone_number_id,
                                },
                                **value,
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }

    def post_status(
        self,
        url: str,
        message_id: str,
        status: str,
        *,
        app_secret: str | None = None,
        recipient: str = "16505551234",
        error: tuple[int, str] | None = None,
        timestamp: int | None = None,
    ) -> int:
        """POST a status notification (sent | delivered | read | failed) to ``url``;
        returns the HTTP status answered."""
        payload = self.status_payload(
            message_id, status, recipient=recipient, error=error, timestamp=timestamp
        )
        return self.post_webhook(url, payload, app_secret=app_secret)

    def post_inbound(
        self,
        url: str,
        from_: str,
        text: str,
        *,
        app_secret: str | None = None,
        name: str = "Test User",
        message_id: str | None = None,
    ) -> int:
        """POST a notification of a text message from ``from_`` to ``url``."""
        payload = self.inbound_payload(from_, text, name=name, message_id=message_id)
        return self.post_webhook(url, payload, app_secret=app_secret)

    def post_webhook(
        self, url: str, payload: dict[str, Any], *, app_secret: str | None = None
    ) -> int:
        """POST ``payload`` signed with ``app_secret`` (default: the peer's; an empty
        string sends it unsigned). Loopback only."""
        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("CloudApiPeer posts to loopback URLs only")
        secret = self.app_secret if app_secret is None else app_secret
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def _check_message(body: Any) -> Answer | None:
    """The documented refusals of a malformed ``messages`` body, or None."""
    if not isinstance(body, dict):
        return _invalid("The request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        return graph_error(
            100,
            "The parameter messaging_product is required.",
            details="messaging_product must be 'whatsapp'",
        )
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        return _invalid("recipient_type must be 'individual'")
    to = body.get("to")
    if not isinstance(to, str) or not to:
        return graph_error(100, "The parameter to is required.", details="to is required")
    if not _PHONE.fullmatch(to):
        return _invalid(f"to: {to!r} is not a phone number")
    kind = body.get("type", "text")
    part = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return _invalid(f"the {kind!r} object is required for type {kind!r}")
    if kind == "text":
        text = part.get("body")
        if not isinstance(text, str) or not text.strip():
            return graph_error(100, "The parameter text['body'] is required.")
        if len(text) > 4096:
            return _invalid("text['body'] is longer than 4096 characters")
        if "preview_url" in part and not isinstance(part["preview_url"], bool):
            return _invalid("text['preview_url'] must be a boolean")
        return _unknown_keys(part, "text", ("body", "preview_url"))
    if kind in MEDIA:
        if ("id" in part) == ("link" in part):
            return _invalid(f"{kind}: exactly one of 'id' or 'link' is required")
        link = part.get("link")
        if "link" in part and (
            not isinstance(link, str) or urlsplit(link).scheme not in ("http", "https")
        ):
            return _invalid(f"{kind}['link'] must be an http(s) URL")
        allowed = ["id", "link"]
        if kind in CAPTIONED:
            allowed.append("caption")
            caption = part.get("caption")
            if caption is not None and (not isinstance(caption, str) or len(caption) > 1024):
                return _invalid(f"{kind}['caption'] must be a string of at most 1024 characters")
        if kind == "document":
            allowed.append("filename")
        return _unknown_keys(part, kind, allowed)
    if kind == "location":
        lat, lng = part.get("latitude"), part.get("longitude")
        if not _coordinate(lat, 90) or not _coordinate(lng, 180):
            return _invalid("location needs numeric latitude and longitude in range")
        return _unknown_keys(part, "location", ("latitude", "longitude", "name", "address"))
    if kind in OTHER_TYPES:
        return None
    return graph_error(131051, "Unsupported message type", details=f"type {kind!r}")


def _unknown_keys(part: dict[str, Any], kind: str, allowed: Any) -> Answer | None:
    for key in part:
        if key not in allowed:
            return graph_error(100, f"Param {kind}['{key}'] is not a valid parameter.")
    return None


def _coordinate(value: Any, bound: float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, int | float) and math.isfinite(value) and -bound <= value <= bound


__all__ = ["CloudApiPeer", "PeerRequest", "Script", "graph_error"]
