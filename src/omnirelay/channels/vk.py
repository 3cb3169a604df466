"""The ``vk`` provider of the ``vk`` channel: a VK community (group) sending with its
community token through the VK API (docs/channels/vk.md).

Outbound: ``messages.send`` (``v`` = ``api_version``, 5.199 by default) to the contact's
``vkId`` (resolved at accept, ``Outbound.extra["recipient"]``), with ``random_id``
derived from our message id so that a retry of the same message is not a second message;
an image goes through ``photos.getMessagesUploadServer`` -> upload -> ``photos.save
MessagesPhoto`` and is attached as ``photo<owner>_<id>``; the seed's action and
``extra["buttons"]`` become an inline keyboard. Answers are ``{"response": ...}`` or
``{"error": {"error_code", "error_msg"}}``. Inbound: the Callback API (``parse_callback``;
the route answers ``confirmation`` with the code in plain text, the rest with ``ok``).

The adapter never touches the database; ``send`` is synchronous (a worker thread).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from omnirelay.channels import common
from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    ProviderEvent,
    RetriableError,
    SendResult,
    register,
)
from omnirelay.net.provider_http import ProviderHTTP
from omnirelay.net.ssrf import IPNetwork
from omnirelay.retry import MAX_PROVIDER_RETRY_AFTER, parse_retry_after

NAME = "vk"
DEFAULT_BASE_URL = "https://api.vk.com"
DEFAULT_VERSION = "5.199"
DEFAULT_TIMEOUT = 15.0
DEFAULT_RATE = 20.0  # VK: a community token makes at most 20 requests a second
MAX_RATE = 10_000.0
MAX_TEXT = 4096
MAX_IMAGE_BYTES = 50 << 20  # VK's upload limit for a photo
_VERSION = re.compile(r"5\.\d{1,3}")

AUTH_ERROR, SETTINGS_ERROR = 1003, 1016
VK_UNKNOWN, VK_LIMIT, VK_BLOCKED = 1100, 1101, 1102

RETRIABLE = frozenset({1, 6, 10})  # unknown (try later), too many requests/s, internal
# VK error code -> (omnirelay status, seed code); docs/channels/vk.md keeps this table.
ERROR_CODES: dict[int, tuple[str, int]] = {
    5: ("error", AUTH_ERROR),  # user authorization failed (bad or revoked token)
    7: ("error", AUTH_ERROR),  # permission to perform this action is denied
    15: ("error", AUTH_ERROR),  # access denied
    27: ("error", AUTH_ERROR),  # group authorization failed
    28: ("error", AUTH_ERROR),  # application authorization failed
    9: ("rejected", VK_LIMIT),  # flood control
    29: ("error", VK_LIMIT),  # rate limit reached (the method's daily quota)
    100: ("rejected", 1021),  # one of the parameters is invalid
    900: ("undelivered", VK_BLOCKED),  # the user put the community on the blacklist
    901: ("undelivered", VK_BLOCKED),  # no permission: the user has not allowed messages
    902: ("undelivered", VK_BLOCKED),  # the user's privacy settings
    911: ("rejected", 1021),  # keyboard format is invalid
    912: ("rejected", 1021),  # chat bot features are off for the community
    914: ("rejected", 1012),  # message is too long
    936: ("undelivered", 1010),  # contact not found
    945: ("undelivered", VK_BLOCKED),  # the chat was disabled
}


@dataclass(frozen=True)
class VkConfig:
    access_token: str
    group_id: int
    secret: str | None
    confirmation_code: str | None
    api_version: str
    base_url: str
    timeout: float
    rate_limit: float

    KEYS = (
        "access_token",
        "group_id",
        "secret",
        "confirmation_code",
        "api_version",
        "base_url",
        "timeout",
        "rate_limit",
    )

    @classmethod
    def from_settings(cls, settings: Any) -> VkConfig:
        s = common.only_keys(settings, cls.KEYS, NAME)
        group = s.get("group_id")
        if isinstance(group, str) and group.isdigit():
            group = int(group)
        if isinstance(group, bool) or not isinstance(group, int) or not 0 < group < 2**53:
            raise ValueError("group_id is required: the community's id (a positive number)")
        version = s.get("api_version", DEFAULT_VERSION)
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ValueError('api_version must look like "5.199"')
        return cls(
            access_token=common.secret(s, "access_token", required=True) or "",
            group_id=group,
            secret=common.secret(s, "secret", required=False, most=50),
            confirmation_code=common.secret(s, "confirmation_code", required=False, most=64),
            api_version=version,
            base_url=common.base_url(s, DEFAULT_BASE_URL),
            timeout=common.number(s, "timeout", DEFAULT_TIMEOUT, low=0.0, high=common.MAX_TIMEOUT),
            rate_limit=common.number(s, "rate_limit", DEFAULT_RATE, low=0, high=MAX_RATE),
        )

    def as_settings(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.KEYS}
        return {k: v for k, v in out.items() if v is not None}


def random_id(message_id: str) -> int:
    """The ``random_id`` of a message: the same for every try of it (VK then answers the
    first message's id instead of sending again), a positive int32 as VK takes."""
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class VkAdapter:
    name = NAME
    channels: tuple[str, ...] = ("vk",)
    recipient_field = "vkId"

    def __init__(self, *, allowed_networks: Sequence[IPNetwork] | None = None) -> None:
        self.http = ProviderHTTP(
            "VK",
            trusted=(DEFAULT_BASE_URL,),
            settings_error_code=SETTINGS_ERROR,
            allowed_networks=allowed_networks,
        )
        # Image links and upload servers are other hosts: the SSRF guard checks each.
        self.media = ProviderHTTP(
            "VK upload", settings_error_code=1036, allowed_networks=allowed_networks
        )
        self.pacer = common.Pacer()

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...] | None:
        return self.http.allowed_networks

    @allowed_networks.setter
    def allowed_networks(self, value: Sequence[IPNetwork] | None) -> None:
        nets = None if value is None else tuple(value)
        self.http.allowed_networks = self.media.allowed_networks = nets

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return VkConfig.from_settings(settings).as_settings()

    # -- sending --

    def send(self, message: Outbound) -> SendResult:
        config = VkConfig.from_settings(message.settings)
        user = recipient(message)
        params: dict[str, Any] = {
            "user_id": user,
            "random_id": random_id(message.message_id),
            "message": _text(message),
        }
        if message.image:
            params["attachment"] = self._upload_photo(config, user, message.image)
        keyboard = build_keyboard(message)
        if keyboard is not None:
            params["keyboard"] = json.dumps(keyboard, ensure_ascii=False)
        answer = self.call(config, "messages.send", params)
        if isinstance(answer, bool) or not isinstance(answer, int):
            raise RetriableError("unexpected answer from VK: messages.send without a message id")
        # VK has no delivery receipts: a message it took is in the user's dialog.
        return SendResult(str(answer), events=(ProviderEvent("status", status="delivered"),))

    def call(self, config: VkConfig, method: str, params: dict[str, Any]) -> Any:
        """One VK API method; its ``response``, or the mapped error."""
        key = f"{config.group_id}"
        self.pacer.wait(key, config.rate_limit)
        answer = self.http.request(
            "POST",
            f"{config.base_url}/method/{method}",
            headers={"Authorization": f"Bearer {config.access_token}"},
            data={**{k: str(v) for k, v in params.items()}, "v": config.api_version},
            timeout=config.timeout,
        )
        try:
            return read_answer(answer, method)
        except RetriableError as exc:
            if exc.delay:
                self.pacer.hold(key, exc.delay)
            raise

    def _upload_photo(self, config: VkConfig, user: int, image: str) -> str:
        server = self.call(config, "photos.getMessagesUploadServer", {"peer_id": user})
        upload_url = server.get("upload_url") if isinstance(server, dict) else None
        if not isinstance(upload_url, str) or not upload_url.startswith(("http://", "https://")):
            raise RetriableError("unexpected answer from VK: no upload_url")
        got = self.media.request("GET", image, timeout=config.timeout)
        if not got.is_success:
            raise PermanentError(f"image {image}: HTTP {got.status_code}", code=1036)
        if len(got.content) > MAX_IMAGE_BYTES:
            raise PermanentError("image is over VK's 50 MB limit", code=1036)
        name = image.rsplit("/", 1)[-1].split("?", 1)[0] or "photo.jpg"
        kind = got.headers.get("content-type", "image/jpeg")
        uploaded = self.media.request(
            "POST",
            upload_url,
            files={"photo": (name, got.content, kind)},
            timeout=config.timeout,
        )
        parts = common.json_of(uploaded)
        if not uploaded.is_success or not isinstance(parts, dict):
            raise RetriableError(f"VK upload server answered HTTP {uploaded.status_code}")
        if not parts.get("photo") or parts.get("photo") == "[]":
            raise PermanentError("VK refused the image (not a photo VK takes)", code=1036)
        saved = self.call(
            config,
            "photos.saveMessagesPhoto",
            {k: parts.get(k, "") for k in ("server", "photo", "hash")},
        )
        first = saved[0] if isinstance(saved, list) and saved else None
        if not isinstance(first, dict) or "id" not in first or "owner_id" not in first:
            raise RetriableError("unexpected answer from VK: photos.saveMessagesPhoto")
        attachment = f"photo{first['owner_id']}_{first['id']}"
        if isinstance(first.get("access_key"), str) and first["access_key"]:
            attachment += f"_{first['access_key']}"
        return attachment

    def close(self) -> None:
        self.http.close()
        self.media.close()


def recipient(message: Outbound) -> int:
    raw = message.extra.get("recipient")
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    raise PermanentError(
        f"no VK user known for phone {message.phone}: the contact has no vkId (learned from "
        "a message_allow whose key is the phone, or set through /user contacts)",
        status="rejected",
        code=1010,
    )


def _text(message: Outbound) -> str:
    text = message.text or ""
    if not text.strip() and not message.image:
        raise PermanentError("text is empty", code=1012)
    if len(text) > MAX_TEXT:
        raise PermanentError(f"text is at most {MAX_TEXT} characters", code=1012)
    return text


def build_keyboard(message: Outbound) -> dict[str, Any] | None:
    """An inline keyboard: the seed's action as an ``open_link`` button, and
    ``extra["buttons"]`` (``{"text", "url"}`` -> open_link, ``{"text"}`` -> a text button)."""
    rows: list[list[dict[str, Any]]] = []
    if message.action:
        rows.append(
            [
                {
                    "action": {
                        "type": "open_link",
                        "link": message.action["url"],
                        "label": message.action["title"][:40],
                    }
                }
            ]
        )
    raw = message.extra.get("buttons")
    if raw is not None:
        if not isinstance(raw, list) or len(raw) > 10:
            raise PermanentError("buttons must be a list of at most 10", code=1021)
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise PermanentError("each button needs a text", code=1021)
            if isinstance(item.get("url"), str):
                action = {"type": "open_link", "link": item["url"], "label": item["text"][:40]}
            else:
                action = {"type": "text", "label": item["text"][:40], "payload": "{}"}
            rows.append([{"action": action}])
    return {"inline": True, "buttons": rows} if rows else None


def read_answer(answer: httpx.Response, method: str) -> Any:
    delay = parse_retry_after(answer.headers.get("retry-after"), cap=MAX_PROVIDER_RETRY_AFTER)
    if answer.status_code == 429:
        raise RetriableError(f"VK {method}: HTTP 429", delay=delay)
    if answer.status_code >= 500 or answer.status_code == 408:
        raise RetriableError(f"VK {method}: HTTP {answer.status_code}", delay=delay)
    if 300 <= answer.status_code < 400:
        raise PermanentError(
            f"VK {method}: HTTP {answer.status_code}: base_url redirects",
            status="error",
            code=SETTINGS_ERROR,
        )
    payload = common.json_of(answer)
    if isinstance(payload, dict) and "response" in payload:
        return payload["response"]
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("error_code") if isinstance(error, dict) else None
    if not isinstance(error, dict) or isinstance(code, bool) or not isinstance(code, int):
        raise RetriableError(
            f"unexpected answer from VK {method}: HTTP {answer.status_code}, "
            "neither response nor error"
        )
    msg = error.get("error_msg")
    text = f"VK error {code} ({method}): {msg if isinstance(msg, str) else 'error'}"
    if code in RETRIABLE:
        raise RetriableError(
            text, delay=delay if delay is not None else (1.0 if code == 6 else None)
        )
    status, seed = ERROR_CODES.get(code, ("rejected", VK_UNKNOWN))
    raise PermanentError(text, status=status, code=seed)


register(VkAdapter())


# --- inbound: the Callback API -------------------------------------------------------------


@dataclass(frozen=True)
class VkEvent:
    """One Callback API event: ``confirmation``, ``inbound`` (message_new), ``outgoing``
    (message_reply: the community wrote, e.g. an operator in VK), ``allow``/``deny``
    (message_allow / message_deny) or ``read`` (message_read of a message we sent)."""

    kind: str
    group_id: int | None
    user_id: int | None = None
    text: str | None = None
    key: str | None = None  # message_allow's key, message_new's ref: may carry a phone
    provider_message_id: str | None = None


def verify_secret(payload: Any, secret: str) -> bool:
    """The ``secret`` field the community's Callback API settings put in every event."""
    given = payload.get("secret") if isinstance(payload, dict) else None
    if not secret or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), secret.encode())


def parse_callback(payload: Any) -> VkEvent | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return None
    kind, group = payload["type"], _int(payload.get("group_id"))
    obj = common.as_dict(payload.get("object"))
    if kind == "confirmation":
        return VkEvent("confirmation", group)
    if kind == "message_new":
        message = common.as_dict(obj.get("message")) or obj
        user = _int(message.get("from_id"))
        if user is None or user <= 0:
            return None  # a community or chat message: not a person's
        ref = message.get("ref") if isinstance(message.get("ref"), str) else None
        return VkEvent(
            "inbound",
            group,
            user,
            str(message.get("text") or ""),
            key=ref,
            provider_message_id=_id(message.get("id")),
        )
    if kind == "message_reply":
        return VkEvent("outgoing", group, _int(obj.get("peer_id")), str(obj.get("text") or ""))
    if kind in ("message_allow", "message_deny"):
        user = _int(obj.get("user_id"))
        if user is None:
            return None
        key = obj.get("key") if isinstance(obj.get("key"), str) else None
        return VkEvent("allow" if kind == "message_allow" else "deny", group, user, key=key)
    if kind == "message_read":
        read = _id(obj.get("read_message_id"))
        return VkEvent("read", group, _int(obj.get("from_id")), provider_message_id=read)
    return VkEvent("other", group)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    return None


def _id(value: Any) -> str | None:
    number = _int(value)
    return str(number) if number is not None and number > 0 else None
