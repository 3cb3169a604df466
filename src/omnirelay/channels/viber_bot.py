"""The ``viber_bot`` provider: a Viber bot (the ``viber-bots`` designation) on the Viber
REST Bot API (docs/channels/viber.md).

Outbound: ``POST {base_url}/pa/send_message`` with ``X-Viber-Auth-Token``; the receiver
is the contact's ``viberId`` (resolved at accept, ``Outbound.extra["recipient"]``); the
answer's ``message_token`` is the provider message id; ``tracking_data`` carries our
message id, which Viber hands back with the user's reply. ``connect`` calls
``set_webhook`` (with no transaction open). Inbound: Viber POSTs callbacks signed with
``X-Viber-Content-Signature`` (hex HMAC-SHA256 of the raw body keyed by the auth token);
``verify_signature`` and ``parse_callback`` read them.

The adapter never touches the database; ``send`` is synchronous (a worker thread).
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from omnirelay.channels import common, viber_media
from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    RetriableError,
    SendResult,
    register,
)
from omnirelay.media import fetch
from omnirelay.media.fetch import Download
from omnirelay.net.provider_http import ProviderHTTP
from omnirelay.net.ssrf import IPNetwork
from omnirelay.retry import MAX_PROVIDER_RETRY_AFTER, parse_retry_after

NAME = "viber_bot"
DEFAULT_BASE_URL = "https://chatapi.viber.com"
DEFAULT_TIMEOUT = 15.0
# Viber publishes no per-second figure for send_message (it answers status 12 when a bot
# goes too fast); omnirelay paces each bot at this rate unless ``rate_limit`` says.
DEFAULT_RATE = 100.0
MAX_RATE = 10_000.0
MAX_TEXT = 7000  # Viber's documented text limit
MAX_SENDER_NAME = 28
EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started")

AUTH_ERROR, SENDER_ERROR, SETTINGS_ERROR, UNKNOWN = 1003, 1011, 1016, 1000
NO_SESSION, BLOCKED, NOT_INSTALLED, OLD_APP = 1200, 1201, 1202, 1203

# Viber status -> (omnirelay status, seed code); docs/channels/viber.md keeps this table.
STATUS_CODES: dict[int, tuple[str, int]] = {
    1: ("rejected", 1036),  # invalidUrl
    2: ("error", AUTH_ERROR),  # invalidAuthToken
    3: ("rejected", 1021),  # badData
    4: ("rejected", 1021),  # missingData
    5: ("undelivered", NOT_INSTALLED),  # receiverNotRegistered
    6: ("undelivered", BLOCKED),  # receiverNotSubscribed
    7: ("error", SENDER_ERROR),  # publicAccountBlocked
    8: ("error", SENDER_ERROR),  # publicAccountNotFound
    9: ("error", SENDER_ERROR),  # publicAccountSuspended
    10: ("error", SETTINGS_ERROR),  # webhookNotSet
    11: ("undelivered", OLD_APP),  # receiverNoSuitableDevice
    13: ("undelivered", OLD_APP),  # apiVersionNotSupported
    14: ("undelivered", OLD_APP),  # incompatibleWithVersion
    15: ("error", AUTH_ERROR),  # publicAccountNotAuthorized
    16: ("rejected", 1058),  # inchatReplyMessageNotAllowed
    17: ("rejected", 1058),  # publicAccountIsNotInline
    18: ("error", SENDER_ERROR),  # noPublicChat
    19: ("rejected", 1058),  # cannotSendBroadcast
    20: ("rejected", 1058),  # broadcastNotAllowed
    21: ("rejected", 1030),  # unsupportedCountry
    22: ("rejected", 1058),  # paymentUnsupported
    23: ("undelivered", NO_SESSION),  # freeMessagesExceeded
    24: ("error", 1015),  # noBalance
}
TOO_MANY_REQUESTS = 12


@dataclass(frozen=True)
class BotConfig:
    auth_token: str
    sender_name: str | None
    sender_avatar: str | None
    base_url: str
    timeout: float
    rate_limit: float

    KEYS = ("auth_token", "sender_name", "sender_avatar", "base_url", "timeout", "rate_limit")

    @classmethod
    def from_settings(cls, settings: Any) -> BotConfig:
        s = common.only_keys(settings, cls.KEYS, NAME)
        avatar = common.text_setting(s, "sender_avatar", most=2000)
        if avatar is not None and not avatar.startswith(("http://", "https://")):
            raise ValueError("sender_avatar must be an http(s) URL")
        return cls(
            auth_token=common.secret(s, "auth_token", required=True) or "",
            sender_name=common.text_setting(s, "sender_name", most=MAX_SENDER_NAME),
            sender_avatar=avatar,
            base_url=common.base_url(s, DEFAULT_BASE_URL),
            timeout=common.number(s, "timeout", DEFAULT_TIMEOUT, low=0.0, high=common.MAX_TIMEOUT),
            rate_limit=common.number(s, "rate_limit", DEFAULT_RATE, low=0, high=MAX_RATE),
        )

    def as_settings(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.KEYS}
        return {k: v for k, v in out.items() if v is not None}


class ViberBotAdapter:
    name = NAME
    channels: tuple[str, ...] = ("viber",)
    recipient_field = "viberId"  # the contact field a send is addressed to

    def __init__(self, *, allowed_networks: Sequence[IPNetwork] | None = None) -> None:
        self.http = ProviderHTTP(
            "Viber",
            trusted=(DEFAULT_BASE_URL,),
            settings_error_code=SETTINGS_ERROR,
            allowed_networks=allowed_networks,
        )
        self.pacer = common.Pacer()

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...] | None:
        return self.http.allowed_networks

    @allowed_networks.setter
    def allowed_networks(self, value: Sequence[IPNetwork] | None) -> None:
        self.http.allowed_networks = None if value is None else tuple(value)

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return BotConfig.from_settings(settings).as_settings()

    # -- sending --

    def send(self, message: Outbound) -> SendResult:
        config = BotConfig.from_settings(message.settings)
        media = viber_media.media_of(message)
        one = viber_media.native(media, message.text or "")
        size = self._size(config, one.url) if one is not None else None
        body = build_message(message, config, media, size)
        answer = self._call(config, "send_message", body)
        token = answer.get("message_token")
        if isinstance(token, bool) or not isinstance(token, int | str) or token == "":
            raise RetriableError("unexpected answer from Viber: status 0 without message_token")
        return SendResult(str(token))

    def _size(self, config: BotConfig, url: str) -> int | None:
        """A video's or file's size, which Viber requires: the ``Content-Length`` its host
        answers to ``HEAD`` (through the SSRF guard; no transaction is open)."""
        answer = self.http.request("HEAD", url, timeout=config.timeout)
        if answer.status_code >= 500 or answer.status_code == 429:
            raise RetriableError(f"the host of {url[:200]} answered HTTP {answer.status_code}")
        length = answer.headers.get("content-length", "")
        return int(length) if answer.is_success and length.isdigit() else None

    def connect(self, settings: Mapping[str, Any], hook_url: str) -> dict[str, Any]:
        """``set_webhook`` to ``hook_url`` for every event omnirelay reads; what Viber
        answered. Called with no transaction open (Viber calls the URL back meanwhile)."""
        config = BotConfig.from_settings(settings)
        body = {
            "url": hook_url,
            "event_types": list(EVENT_TYPES),
            "send_name": True,
            "send_photo": False,
        }
        return self._call(config, "set_webhook", body)

    def _call(self, config: BotConfig, method: str, body: dict[str, Any]) -> dict[str, Any]:
        key = hashlib.sha256(config.auth_token.encode()).hexdigest()[:16]
        self.pacer.wait(key, config.rate_limit)
        answer = self.http.request(
            "POST",
            f"{config.base_url}/pa/{method}",
            headers={"X-Viber-Auth-Token": config.auth_token},
            json=body,
            timeout=config.timeout,
        )
        try:
            return read_answer(answer)
        except RetriableError as exc:
            if exc.delay:
                self.pacer.hold(key, exc.delay)
            raise

    def download(self, settings: Mapping[str, Any], url: str) -> Download:
        """A file a user sent the bot: the media URL of its callback, through the SSRF
        guard (Viber's CDN is not a host omnirelay trusts blindly)."""
        try:
            config = BotConfig.from_settings(settings)
        except ValueError as exc:
            raise PermanentError(f"viber_bot settings: {exc}") from None
        return fetch.download(self.http, url, what="Viber media download", timeout=config.timeout)

    def close(self) -> None:
        self.http.close()


def read_answer(answer: httpx.Response) -> dict[str, Any]:
    """Viber answers HTTP 200 with ``{"status": 0, "status_message": "ok", ...}``; any
    other status is an error of the table above. Garbage is a clear retriable error."""
    delay = parse_retry_after(answer.headers.get("retry-after"), cap=MAX_PROVIDER_RETRY_AFTER)
    if answer.status_code == 429:
        raise RetriableError("Viber HTTP 429: too many requests", delay=delay)
    if answer.status_code >= 500 or answer.status_code == 408:
        raise RetriableError(f"Viber HTTP {answer.status_code}", delay=delay)
    if 300 <= answer.status_code < 400:
        raise PermanentError(
            f"Viber HTTP {answer.status_code}: base_url redirects",
            status="error",
            code=SETTINGS_ERROR,
        )
    payload = common.json_of(answer)
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or isinstance(status, bool) or not isinstance(status, int):
        raise RetriableError(
            f"unexpected answer from Viber: HTTP {answer.status_code}, not a Viber status"
        )
    if status == 0 and answer.is_success:
        return payload
    text = payload.get("status_message")
    text = f"Viber status {status}: {text if isinstance(text, str) else 'error'}"
    if status == TOO_MANY_REQUESTS:
        raise RetriableError(text, delay=delay if delay is not None else 1.0)
    if status == 0:  # "ok" with an HTTP error: not Viber's answer
        raise RetriableError(f"unexpected answer from Viber: HTTP {answer.status_code}")
    outcome, code = STATUS_CODES.get(status, ("rejected", UNKNOWN))
    raise PermanentError(text, status=outcome, code=code)


def build_message(
    message: Outbound,
    config: BotConfig,
    media: list[viber_media.Media] | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """The ``send_message`` body; ``media``: the step's image and attachments (read
    from the step when not given), ``size``: a lone video's or file's size."""

    receiver = message.extra.get("recipient")
    if not isinstance(receiver, str) or not receiver:
        raise PermanentError(
            f"no Viber user known for phone {message.phone}: the contact has no viberId "
            "(learned when the user shares the phone with the bot or opens it from a link "
            "with the phone as context)",
            status="rejected",
            code=1010,
        )
    name = config.sender_name or message.sender or "omnirelay"
    sender: dict[str, Any] = {"name": name[:MAX_SENDER_NAME]}
    if config.sender_avatar:
        sender["avatar"] = config.sender_avatar
    body: dict[str, Any] = {
        "receiver": receiver,
        "sender": sender,
        "tracking_data": message.message_id,
        "min_api_version": 1,
    }
    text = message.text or ""
    media = viber_media.media_of(message) if media is None else media
    if media:
        body.update(viber_media.content(media, text, size))
        if body["type"] == "rich_media":
            body["min_api_version"] = 2
    else:
        if not text.strip():
            raise PermanentError("text is empty", code=1012)
        if len(text) > MAX_TEXT:
            raise PermanentError(f"text is at most {MAX_TEXT} characters", code=1012)
        body.update(type="text", text=text)
    keyboard = viber_media.keyboard(message)
    if keyboard is not None:
        body["keyboard"] = keyboard
        body["min_api_version"] = max(3, body["min_api_version"])
    return body


_adapter = ViberBotAdapter()
register(_adapter)
# Inbound pictures, videos and files are downloaded by the inbound.attachments drain.
fetch.FETCHERS[NAME] = _adapter.download


# --- inbound: callbacks -------------------------------------------------------------------


def verify_signature(body: bytes, header: str | None, auth_token: str) -> bool:
    """``X-Viber-Content-Signature``: hex HMAC-SHA256 of the raw body, keyed by the bot's
    auth token; compared in constant time."""
    if not auth_token or not header:
        return False
    expected = hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


@dataclass(frozen=True)
class BotEvent:
    """One Viber callback: ``status`` (delivered/read/undelivered of a message we sent),
    ``inbound`` (a user's message), ``subscribed``/``unsubscribed``/``conversation_started``,
    or ``webhook`` (Viber checking the URL)."""

    kind: str
    provider_message_id: str | None = None
    status: str | None = None
    code: int | None = None
    error: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    text: str | None = None
    tracking_data: str | None = None  # our message id, on a reply
    context: str | None = None  # conversation_started: the deep link's context
    phone: str | None = None  # a shared contact's phone
    file: ViberFile | None = None  # a picture, video or file message's media


@dataclass(frozen=True)
class ViberFile:
    """What a media message says of its file: the URL Viber hands over (downloaded later
    through the SSRF guard, media/fetch.py), a name and a type (Viber gives none for a
    picture or a video: taken from the kind), the size when stated."""

    url: str
    name: str
    content_type: str | None
    size: int | None


def _failed_code(desc: str) -> int:
    low = desc.lower()
    if "not subscribed" in low or "block" in low:
        return BLOCKED
    if "not registered" in low or "not a viber user" in low:
        return NOT_INSTALLED
    if "device" in low or "version" in low:
        return OLD_APP
    return UNKNOWN


def parse_callback(payload: Any) -> BotEvent | None:
    """The event a callback body says; None for a shape not understood (never raises)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        return None
    event = payload["event"]
    token = payload.get("message_token")
    token_s = str(token) if isinstance(token, int | str) and not isinstance(token, bool) else None
    if event in ("delivered", "seen", "failed"):
        if token_s is None:
            return None
        user = _s(payload.get("user_id"))
        if event == "failed":
            desc = _s(payload.get("desc")) or "failed"
            return BotEvent(
                "status",
                token_s,
                "undelivered",
                _failed_code(desc),
                f"Viber: {desc}",
                user_id=user,
            )
        return BotEvent(
            "status", token_s, "delivered" if event == "delivered" else "read", user_id=user
        )
    if event in ("subscribed", "conversation_started"):
        person = common.as_dict(payload.get("user"))
        if not _s(person.get("id")):
            return None
        return BotEvent(
            event,
            user_id=_s(person.get("id")),
            user_name=_s(person.get("name")),
            context=_s(payload.get("context")),
        )
    if event == "unsubscribed":
        user_id = _s(payload.get("user_id"))
        return BotEvent(event, user_id=user_id) if user_id else None
    if event == "message":
        sender = common.as_dict(payload.get("sender"))
        message = common.as_dict(payload.get("message"))
        if not message or not _s(sender.get("id")):
            return None
        contact = common.as_dict(message.get("contact"))
        text = _s(message.get("text"))
        file = _file(message)
        return BotEvent(
            "inbound",
            provider_message_id=token_s,
            user_id=_s(sender.get("id")),
            user_name=_s(sender.get("name")),
            text=text or _s(contact.get("phone_number")) or "",
            tracking_data=_s(message.get("tracking_data")),
            phone=_s(contact.get("phone_number")),
            file=file,
        )
    if event == "webhook":
        return BotEvent("webhook")
    return None


# Viber names no type for these kinds; a file's comes from its name (media/inbound.py).
KIND_TYPES = {"picture": "image/jpeg", "video": "video/mp4", "file": None}


def _file(message: dict[str, Any]) -> ViberFile | None:
    kind, url = message.get("type"), _s(message.get("media"))
    if kind not in KIND_TYPES or url is None or not url.startswith(("http://", "https://")):
        return None
    size = message.get("size")
    name = _s(message.get("file_name")) or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return ViberFile(
        url,
        name or str(kind),
        KIND_TYPES[kind] or mimetypes.guess_type(name)[0],
        size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
    )


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
