"""The ``whatsapp_cloud`` provider: a WhatsApp device bound to a WhatsApp Business Cloud API
phone number (docs/whatsapp-cloud.md).

Outbound: ``POST {base_url}/{api_version}/{phone_number_id}/messages`` with the number's
access token; the answer's ``messages[0].id`` (a ``wamid``) is the provider message id.
Inbound: Meta POSTs webhook notifications signed with the app secret
(``X-Hub-Signature-256``); the pure functions at the end of this module check and read
them, so the route that receives them needs nothing else from here.

The adapter never touches the database. ``send`` is synchronous (a worker thread calls it).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    ProviderEvent,
    RetriableError,
    SendResult,
    register,
)
from omnirelay.media import fetch
from omnirelay.media.fetch import Download, TooLarge
from omnirelay.media.storage import MAX_SIZE
from omnirelay.net.provider_http import ProviderHTTP
from omnirelay.net.ssrf import IPNetwork
from omnirelay.retry import MAX_PROVIDER_RETRY_AFTER as MAX_RETRY_AFTER
from omnirelay.retry import parse_retry_after

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
DEFAULT_TIMEOUT = 15.0
MAX_TIMEOUT = 120.0
PHONE_FIELDS = ("display_phone_number", "verified_name", "quality_rating")

# Cloud API limits, checked before sending so the answer names the cause.
MAX_TEXT = 4096
MAX_CAPTION = 1024

_VERSION = re.compile(r"v\d{1,3}\.\d{1,3}")
_DIGITS = re.compile(r"\d{1,32}")
_MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # printable ASCII: it goes into a header

# Media chosen by the file extension of the link (or of ``filename``); the Cloud API
# takes JPEG/PNG images, MP4/3GPP video and these audio containers. Anything else goes
# as a document, which WhatsApp shows as a file with its name.
IMAGE_EXT = frozenset({"jpg", "jpeg", "png"})
VIDEO_EXT = frozenset({"mp4", "3gp", "3gpp"})
AUDIO_EXT = frozenset({"aac", "amr", "mp3", "m4a", "ogg", "opus"})
STICKER_EXT = frozenset({"webp"})
DOCUMENT_EXT = frozenset(
    {"pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "rtf", "odt", "zip"}
)
CAPTIONED = frozenset({"image", "video", "document"})  # audio and stickers take no caption

POLL_KEYS = ("choices", "pollname", "poll")

# --- the error mapping (docs/whatsapp-cloud.md keeps the same table) ---------------------
#
# Cloud API error codes are Graph API codes; omnirelay reports the seed 001 codes, so each
# Cloud code is mapped to one of those. The Cloud code and message stay in the error text.

RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131048, 131056})
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})  # "temporary, wait and retry"
AUTH_CODES = frozenset({0, 3, 10, 102, 190, *range(200, 300)})

AUTH_ERROR = 1003  # Authorization error
SENDER_ERROR = 1011  # Sender ID error: the business number itself cannot send
SETTINGS_ERROR = 1016  # Delivery failure (routing is not configured)
UNKNOWN_ERROR = 1000  # Undocumented mistake

# Account-level failures: the connection is broken, not this message (status "error").
ACCOUNT_CODES: dict[int, int] = {
    33: SENDER_ERROR,  # the business phone number has been deleted
    368: SENDER_ERROR,  # temporarily blocked for policy violations
    131031: SENDER_ERROR,  # business account locked
    133010: SENDER_ERROR,  # phone number not registered on the Cloud API
    131042: 1015,  # business eligibility payment issue -> Balance error
}
# Failures of this message (status "rejected").
MESSAGE_CODES: dict[int, int] = {
    131026: 1010,  # message undeliverable (no WhatsApp, old app, ...) -> Tel.number error
    131021: 1010,  # recipient cannot be sender
    131030: 1022,  # recipient not in the test number's allowed list
    130497: 1030,  # business may not message users in this country -> Routing error
    131047: 1058,  # re-engagement: 24 h since the user last wrote -> User can't make that action
    131051: 1031,  # unsupported message type -> Invalid content type
    131052: 1036,  # media download error -> Wrong image (media) URL
    131053: 1036,  # media upload error
    100: 1021,  # invalid parameter -> Invalid argument
    131008: 1021,  # required parameter missing
    131009: 1021,  # parameter value is not valid
    135000: 1021,  # generic user error
}


def omnirelay_code(cloud_code: int | None) -> int:
    """The omnirelay (seed 001) code reported for a Cloud API error code, wherever it
    comes from: a refused send or a ``failed`` status notification."""
    if cloud_code is None:
        return UNKNOWN_ERROR
    if cloud_code in AUTH_CODES:
        return AUTH_ERROR
    return ACCOUNT_CODES.get(cloud_code) or MESSAGE_CODES.get(cloud_code) or UNKNOWN_ERROR


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudConfig:
    phone_number_id: str
    access_token: str
    app_secret: str | None = None
    verify_token: str | None = None
    api_version: str = DEFAULT_API_VERSION
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT

    KEYS = (
        "phone_number_id",
        "access_token",
        "app_secret",
        "verify_token",
        "api_version",
        "base_url",
        "timeout",
    )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CloudConfig:
        """Parse and normalise; raise ValueError naming what is wrong (no network use)."""
        if not isinstance(settings, Mapping):
            raise ValueError("settings must be an object")
        unknown = sorted(set(settings) - set(cls.KEYS))
        if unknown:
            raise ValueError(f"unknown whatsapp_cloud setting {unknown[0]!r}")
        pnid = settings.get("phone_number_id")
        if isinstance(pnid, int) and not isinstance(pnid, bool) and pnid >= 0:
            pnid = str(pnid)
        if not isinstance(pnid, str) or not _DIGITS.fullmatch(pnid):
            raise ValueError("phone_number_id is required: the Cloud API phone number ID (digits)")
        token = settings.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("access_token is required: a non-empty string")
        if not _TOKEN.fullmatch(token):
            raise ValueError("access_token must be printable ASCII without spaces")
        secrets: dict[str, str | None] = {}
        for key in ("app_secret", "verify_token"):
            value = settings.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{key} must be a non-empty string")
            if isinstance(value, str) and len(value) > 1024:
                raise ValueError(f"{key} must be at most 1024 characters")
            secrets[key] = value
        version = settings.get("api_version", DEFAULT_API_VERSION)
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ValueError('api_version must look like "v21.0"')
        base = settings.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base, str):
            raise ValueError("base_url must be a string")
        base = _check_base_url(base)
        timeout = settings.get("timeout", DEFAULT_TIMEOUT)
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            raise ValueError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
        return cls(
            pnid,
            token,
            secrets["app_secret"],
            secrets["verify_token"],
            version,
            base,
            float(timeout),
        )

    def as_settings(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.KEYS}


def _check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or a fragment")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ValueError("base_url has an invalid port") from None
    return url.strip().rstrip("/")


# --- the adapter -------------------------------------------------------------------------


class CloudAdapter:
    name = "whatsapp_cloud"
    channels: tuple[str, ...] = ("whatsapp",)

    def __init__(self, *, allowed_networks: Sequence[IPNetwork] | None = None) -> None:
        # A base_url other than Meta's is a user-supplied URL and passes the SSRF guard
        # (net/provider_http.py), with these networks allowed. ``None``: the server's
        # OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS, read when first needed. An app built with its
        # own Settings may assign ``allowed_networks`` on the registered instance.
        self.http = ProviderHTTP(
            "Cloud API",
            trusted=(DEFAULT_BASE_URL,),
            settings_error_code=SETTINGS_ERROR,
            allowed_networks=allowed_networks,
        )

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...] | None:
        return self.http.allowed_networks

    @allowed_networks.setter
    def allowed_networks(self, value: Sequence[IPNetwork] | None) -> None:
        self.http.allowed_networks = None if value is None else tuple(value)

    def __enter__(self) -> CloudAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings --

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        config = CloudConfig.from_settings(settings)
        self.http.validate_base_url(config.base_url)
        return config.as_settings()

    # -- sending --

    def send(self, message: Outbound) -> SendResult:
        config = self._config(message.settings)
        body = build_message(message)
        answer = self._request("POST", config, f"{config.phone_number_id}/messages", body)
        if answer.is_success:
            wamid = _wamid(answer)
            if wamid is None:
                # A 2xx without an id is not the Cloud API (a proxy, a captive portal):
                # nothing says the message was taken, so it is tried again.
                raise RetriableError(f"unexpected answer from the Cloud API: {answer.status_code}")
            return SendResult(wamid)
        raise error_for(answer.status_code, _json(answer), answer.headers.get("retry-after"))

    def check(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Ask the Cloud API about the bound number (when a device connects). Returns the
        number's ``id`` and PHONE_FIELDS; PermanentError when the token or number is bad."""
        config = self._config(settings)
        path = f"{config.phone_number_id}?fields={','.join(PHONE_FIELDS)}"
        answer = self._request("GET", config, path)
        payload = _json(answer)
        if answer.is_success and isinstance(payload, dict):
            return {k: payload[k] for k in ("id", *PHONE_FIELDS) if k in payload}
        if answer.is_success:
            raise RetriableError(f"unexpected answer from the Cloud API: {answer.status_code}")
        error = error_for(answer.status_code, payload, answer.headers.get("retry-after"))
        if isinstance(error, PermanentError):
            # Whatever is refused here is the binding's fault, not a message's.
            raise PermanentError(str(error), status="error", code=error.code)
        raise error

    def download(self, settings: Mapping[str, Any], media_id: str) -> Download:
        """A file a user sent the number (inbound media, ADR 37): ``GET /<media id>`` for
        its URL, type and size, then the URL with the token (as the API requires), both
        through ProviderHTTP: the URL the API hands back is SSRF-checked like a tenant's
        base URL. The stated size is checked before the download, the body's after."""
        config = self._config(settings)
        if not _MEDIA_ID.fullmatch(media_id):
            raise PermanentError("the Cloud API media id is not an id")
        answer = self._request("GET", config, media_id)
        if answer.status_code >= 500 or answer.status_code == 429:
            raise RetriableError(f"Cloud API media lookup: HTTP {answer.status_code}")
        payload = _json(answer)
        url = payload.get("url") if isinstance(payload, dict) else None
        if not answer.is_success or not isinstance(url, str):
            raise PermanentError(f"Cloud API media lookup: HTTP {answer.status_code}")
        assert isinstance(payload, dict)
        size = payload.get("file_size")
        size = int(size) if isinstance(size, str) and size.isdigit() else size
        if isinstance(size, int) and not isinstance(size, bool) and size > MAX_SIZE:
            raise TooLarge(size)
        got = fetch.download(
            self.http,
            url,
            what="Cloud API media download",
            headers={"Authorization": f"Bearer {config.access_token}"},
            timeout=config.timeout,
        )
        kind = payload.get("mime_type")
        return Download(got.data, None, kind if isinstance(kind, str) else got.content_type)

    def close(self) -> None:
        """Close the pooled connections (an adapter made for one call should be closed,
        or used as a context manager)."""
        self.http.close()

    # -- plumbing --

    @staticmethod
    def _config(settings: Mapping[str, Any]) -> CloudConfig:
        try:
            return CloudConfig.from_settings(settings)
        except ValueError as exc:
            raise PermanentError(
                f"whatsapp_cloud settings: {exc}", status="error", code=SETTINGS_ERROR
            ) from None

    def _request(
        self,
        method: str,
        config: CloudConfig,
        path: str,
        json_body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        return self.http.request(
            method,
            f"{config.base_url}/{config.api_version}/{path}",
            headers={
                "Authorization": f"Bearer {config.access_token}",
                "Accept": "application/json",
            },
            json=json_body,
            timeout=config.timeout,
        )


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _wamid(answer: httpx.Response) -> str | None:
    payload = _json(answer)
    if not isinstance(payload, dict):
        return None
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return None
    wamid = messages[0].get("id")
    return wamid if isinstance(wamid, str) and wamid else None


# --- request bodies ----------------------------------------------------------------------


def media_type(url: str, filename: str | None = None) -> str:
    """image / video / audio / sticker / document, by the file extension of the link's
    path when it is a known one, else by that of ``filename``; else a document."""
    for name in (unquote(urlsplit(url).path), filename or ""):
        ext = posixpath.splitext(name)[1].lower().lstrip(".")
        for kind, known in KINDS:
            if ext in known:
                return kind
    return "document"


KINDS = (
    ("image", IMAGE_EXT),
    ("video", VIDEO_EXT),
    ("audio", AUDIO_EXT),
    ("sticker", STICKER_EXT),
    ("document", DOCUMENT_EXT),
)


def build_message(message: Outbound) -> dict[str, Any]:
    """The Cloud API ``messages`` body for one outbound message (or PermanentError)."""
    extra = message.extra or {}
    phone = message.phone.lstrip("+")
    if extra.get("group") or "@" in phone:
        raise PermanentError("the Cloud API adapter sends to phone numbers, not groups", code=1010)
    if not phone.isdigit() or not 6 <= len(phone) <= 15:
        raise PermanentError(f"recipient {message.phone!r} is not E.164 digits", code=1010)
    if any(extra.get(key) for key in POLL_KEYS):
        raise PermanentError(
            "polls have no WhatsApp Cloud API equivalent and are not sent", code=1031
        )
    if extra.get("file") and not extra.get("url"):
        # An uploaded file would need the Cloud API media upload first; refused rather
        # than sending the text without it.
        raise PermanentError(
            "uploaded files are not supported by whatsapp_cloud; send a media url", code=1031
        )
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": phone,
    }
    text = message.text or ""
    location = extra.get("location")
    url = extra.get("url") or message.image
    if location:
        lat, lng = _location(location)
        place: dict[str, Any] = {"latitude": lat, "longitude": lng}
        if text:
            # A location message has no body: the text becomes the place's name.
            place["name"] = _limit(text, MAX_CAPTION, "location name")
        body.update(type="location", location=place)
    elif url:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PermanentError("media url must be an http(s) link", code=1036)
        filename = extra.get("filename")
        filename = filename if isinstance(filename, str) and filename.strip() else None
        kind = media_type(url, filename)
        media: dict[str, Any] = {"link": url}
        if kind in CAPTIONED and text:
            media["caption"] = _limit(text, MAX_CAPTION, "caption")
        if kind == "document":
            media["filename"] = filename or _basename(url)
        body.update(type=kind)
        body[kind] = media
    else:
        if not text.strip():
            raise PermanentError("text is empty", code=1012)
        body.update(
            type="text",
            text={
                "body": _limit(text, MAX_TEXT, "text"),
                "preview_url": _flag(extra.get("preview")),
            },
        )
    return body


def _flag(value: Any) -> bool:
    # Gateway bodies may be form-encoded: "false" must not read as true.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _limit(text: str, most: int, what: str) -> str:
    if len(text) > most:
        raise PermanentError(
            f"{what} is {len(text)} characters; WhatsApp takes at most {most}", code=1012
        )
    return text


def _basename(url: str) -> str:
    name = posixpath.basename(unquote(urlsplit(url).path))
    return name or "file"


def _location(value: Any) -> tuple[float, float]:
    try:
        lat_s, lng_s = str(value).split(",")
        lat, lng = float(lat_s), float(lng_s)
    except ValueError:
        raise PermanentError(f'location must be "lat,long", not {value!r}', code=1021) from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise PermanentError(f"location {value!r} is out of range", code=1021)
    return lat, lng


# --- answers -----------------------------------------------------------------------------


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, at most a day (the one parser: omnirelay.retry)."""
    return parse_retry_after(value, cap=MAX_RETRY_AFTER)


def error_for(
    http_status: int, payload: Any, retry_after_header: str | None = None
) -> RetriableError | PermanentError:
    """Classify a refused request (docs/whatsapp-cloud.md, "Errors")."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    subcode = error.get("error_subcode")
    message = error.get("message") if isinstance(error.get("message"), str) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    text = f"WhatsApp Cloud API error {code if code is not None else http_status}"
    text += f": {message or 'HTTP ' + str(http_status)}"
    if isinstance(details, str) and details and details != message:
        text += f" ({details})"

    if http_status == 429 or code in RATE_LIMIT_CODES:
        return RetriableError(text, delay=retry_after(retry_after_header))
    if http_status >= 500 or http_status == 408 or code in TRANSIENT_CODES:
        return RetriableError(text, delay=retry_after(retry_after_header))
    if 300 <= http_status < 400:
        # Redirects are not followed: a base_url that redirects is misconfigured.
        return PermanentError(text, status="error", code=SETTINGS_ERROR)
    if http_status == 401 or code in AUTH_CODES:
        return PermanentError(text, status="error", code=AUTH_ERROR)
    if code == 100 and subcode == 33:
        # "Object with ID ... does not exist": the phone number ID is unknown to the token.
        return PermanentError(text, status="error", code=SENDER_ERROR)
    if code in ACCOUNT_CODES:
        return PermanentError(text, status="error", code=ACCOUNT_CODES[code])
    if http_status == 404 and code is None:
        return PermanentError(text, status="error", code=SETTINGS_ERROR)
    return PermanentError(text, status="rejected", code=omnirelay_code(code))


_adapter = CloudAdapter()
register(_adapter)
# Inbound media (a media id in the webhook) is downloaded by the inbound.attachments drain.
fetch.FETCHERS[_adapter.name] = _adapter.download


# --- inbound: webhooks -------------------------------------------------------------------


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the app
    secret>``; compared in constant time. No secret, no header: not verified."""
    if not app_secret or not header:
        return False
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


def verify_subscription(params: Mapping[str, str], verify_token: str) -> str | None:
    """The GET handshake Meta makes when the callback URL is set: answer ``hub.challenge``
    (as the plain body, HTTP 200) when the mode is ``subscribe`` and the token matches;
    ``None`` means answer 403."""
    if not verify_token:
        return None
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if mode != "subscribe" or not isinstance(token, str) or not challenge:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge


STATUSES = ("sent", "delivered", "read", "failed")
MEDIA_TYPES = ("image", "video", "audio", "voice", "document", "sticker")
INBOUND_TYPES = ("text", "button", "interactive", "location", "reaction", *MEDIA_TYPES)


@dataclass(frozen=True)
class CloudEvent:
    """One thing a webhook notification says: a ``status`` of a message we sent, or an
    ``inbound`` message from a WhatsApp user."""

    kind: str  # "status" | "inbound"
    phone_number_id: str | None = None  # the business number it concerns (metadata)
    timestamp: int | None = None  # unix seconds
    # status
    provider_message_id: str | None = None  # the wamid ``send`` returned
    status: str | None = None  # sent | delivered | read | failed
    recipient: str | None = None
    error_code: int | None = None  # failed only
    error_title: str | None = None
    # inbound
    sender: str | None = None  # the user's number, digits (``from``)
    name: str | None = None  # the user's profile name
    message_id: str | None = None
    type: str | None = None  # text, image, interactive, location, ...
    text: str | None = None  # body, caption, button text, reply title, reaction emoji
    context_id: str | None = None  # the wamid of the message replied / reacted to
    media_id: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_name: str | None = None
    address: str | None = None


def parse_webhook(payload: Any) -> list[CloudEvent]:
    """Every status and inbound message of a ``whatsapp_business_account`` notification,
    in order. Shapes not understood are skipped; this never raises."""
    events: list[CloudEvent] = []
    for value in _values(payload):
        metadata = _dict(value.get("metadata"))
        pnid = _str(metadata.get("phone_number_id"))
        for item in _list(value.get("statuses")):
            event = _guard(_status, item, pnid)
            if event is not None:
                events.append(event)
        names = _names(value.get("contacts"))
        for item in _list(value.get("messages")):
            event = _guard(_inbound, item, pnid, names)
            if event is not None:
                events.append(event)
    return events


def to_provider_event(event: CloudEvent) -> ProviderEvent | None:
    """The pipeline's view of an event: delivered/read move the attempt forward, failed
    ends it as ``undelivered`` with the mapped code, inbound is a reply. ``sent`` adds
    nothing (the send already recorded it)."""
    if event.kind == "inbound":
        return ProviderEvent("inbound", text=event.text)
    if event.status in ("delivered", "read"):
        return ProviderEvent("status", status=event.status)
    if event.status == "failed":
        error = f"WhatsApp Cloud API error {event.error_code}: {event.error_title or 'failed'}"
        return ProviderEvent(
            "status", status="undelivered", code=omnirelay_code(event.error_code), error=error
        )
    return None


def _values(payload: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(payload, dict):
        return
    for entry in _list(payload.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            change = _dict(change)
            if change.get("field", "messages") != "messages":
                continue
            value = change.get("value")
            if isinstance(value, dict):
                yield value


def _guard(parse: Any, *args: Any) -> CloudEvent | None:
    try:
        event: CloudEvent | None = parse(*args)
        return event
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
        return None  # a shape we do not know: skipped, never an error


def _status(item: Any, pnid: str | None) -> CloudEvent | None:
    item = _dict(item)
    wamid, status = _str(item.get("id")), item.get("status")
    if not wamid or status not in STATUSES:
        return None
    code: int | None = None
    title: str | None = None
    if status == "failed":
        first = _dict((_list(item.get("errors")) or [None])[0])
        raw = first.get("code")
        code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        title = _str(first.get("title")) or _str(first.get("message"))
    return CloudEvent(
        "status",
        phone_number_id=pnid,
        timestamp=_timestamp(item.get("timestamp")),
        provider_message_id=wamid,
        status=status,
        recipient=_str(item.get("recipient_id")),
        error_code=code,
        error_title=title,
    )


def _inbound(item: Any, pnid: str | None, names: dict[str, str]) -> CloudEvent | None:
    item = _dict(item)
    sender, kind = _str(item.get("from")), item.get("type")
    if not sender or not sender.isdigit() or kind not in INBOUND_TYPES:
        return None
    fields: dict[str, Any] = {}
    part = _dict(item.get(kind))
    if kind == "text":
        fields["text"] = _str(part.get("body"))
    elif kind == "button":  # a quick-reply button of a template
        fields["text"] = _str(part.get("text")) or _str(part.get("payload"))
    elif kind == "interactive":
        reply = _dict(part.get(_str(part.get("type")) or ""))
        fields["text"] = _str(reply.get("title"))
    elif kind == "reaction":
        fields["text"] = _str(part.get("emoji"))
        fields["context_id"] = _str(part.get("message_id"))
    elif kind == "location":
        lat, lng = _float(part.get("latitude")), _float(part.get("longitude"))
        if lat is None or lng is None:
            return None
        fields.update(
            latitude=lat,
            longitude=lng,
            location_name=_str(part.get("name")),
            address=_str(part.get("address")),
        )
    else:
        fields.update(
            text=_str(part.get("caption")),
            media_id=_str(part.get("id")),
            mime_type=_str(part.get("mime_type")),
            filename=_str(part.get("filename")),
        )
    fields.setdefault("context_id", _str(_dict(item.get("context")).get("id")))
    return CloudEvent(
        "inbound",
        phone_number_id=pnid,
        timestamp=_timestamp(item.get("timestamp")),
        sender=sender,
        name=names.get(sender) or (next(iter(names.values())) if len(names) == 1 else None),
        message_id=_str(item.get("id")),
        type=kind,
        **fields,
    )


def _names(contacts: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for contact in _list(contacts):
        contact = _dict(contact)
        name = _str(_dict(contact.get("profile")).get("name"))
        if name:
            out[_str(contact.get("wa_id")) or ""] = name
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _float(value: Any) -> float | None:
    # Documented as numbers; a numeric string is taken too.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return int(value)
    return None


__all__ = [
    "CloudAdapter",
    "CloudConfig",
    "CloudEvent",
    "build_message",
    "error_for",
    "media_type",
    "omnirelay_code",
    "parse_webhook",
    "to_provider_event",
    "verify_signature",
    "verify_subscription",
]
