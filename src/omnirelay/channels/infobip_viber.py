"""The ``infobip_viber`` provider: Viber Business Messages to a phone number (the
``viber`` designation, /v3 sendViber) through Infobip's Viber API (docs/channels/viber.md,
ADR 32).

Outbound: ``POST {base_url}/viber/2/messages`` with ``Authorization: App <api key>``; one
message, one destination, our message id as Infobip's ``messageId`` (a retry names the
same message) and ``options.validityPeriod`` = the step's ttl; the answer's
``messages[0].messageId`` is the provider message id. Inbound: Infobip POSTs delivery
reports, seen reports and user replies (``{"results": [...]}``) to the URL configured on
the account, with HTTP Basic credentials whose password is the connection's
``webhook_secret``; ``verify_basic`` and ``parse_results`` read them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from omnirelay.channels import common
from omnirelay.channels.base import (
    Outbound,
    PermanentError,
    RetriableError,
    SendResult,
    register,
)
from omnirelay.net.provider_http import ProviderHTTP
from omnirelay.net.ssrf import IPNetwork
from omnirelay.retry import MAX_PROVIDER_RETRY_AFTER, parse_retry_after

NAME = "infobip_viber"
DEFAULT_BASE_URL = "https://api.infobip.com"
DEFAULT_TIMEOUT = 15.0
DEFAULT_RATE = 100.0  # Infobip's default API throughput per account, requests a second
MAX_RATE = 10_000.0
MAX_TEXT = 1000  # Viber business messages

AUTH_ERROR, SETTINGS_ERROR = 1003, 1016
NO_SESSION, BLOCKED, NOT_INSTALLED, OLD_APP = 1200, 1201, 1202, 1203

# Infobip error names of Viber deliveries -> seed codes (docs/channels/viber.md).
ERROR_NAMES: dict[str, int] = {
    "EC_ABSENT_SUBSCRIBER": NOT_INSTALLED,
    "EC_NOT_VIBER_USER": NOT_INSTALLED,
    "NOT_VIBER_USER": NOT_INSTALLED,
    "EC_USER_BLOCKED": BLOCKED,
    "USER_BLOCKED": BLOCKED,
    "EC_NO_SUITABLE_DEVICE": OLD_APP,
    "NO_SUITABLE_DEVICE": OLD_APP,
    "EC_NO_SESSION": NO_SESSION,
    "EC_SESSION_EXPIRED": NO_SESSION,
}
# Status group of a report -> omnirelay status.
GROUPS = {3: "delivered", 2: "undelivered", 4: "expired", 5: "rejected"}


@dataclass(frozen=True)
class InfobipConfig:
    api_key: str
    webhook_secret: str | None
    base_url: str
    timeout: float
    rate_limit: float

    KEYS = ("api_key", "webhook_secret", "base_url", "timeout", "rate_limit")

    @classmethod
    def from_settings(cls, settings: Any) -> InfobipConfig:
        s = common.only_keys(settings, cls.KEYS, NAME)
        return cls(
            api_key=common.secret(s, "api_key", required=True) or "",
            webhook_secret=common.secret(s, "webhook_secret", required=False),
            base_url=common.base_url(s, DEFAULT_BASE_URL),
            timeout=common.number(s, "timeout", DEFAULT_TIMEOUT, low=0.0, high=common.MAX_TIMEOUT),
            rate_limit=common.number(s, "rate_limit", DEFAULT_RATE, low=0, high=MAX_RATE),
        )

    def as_settings(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.KEYS}
        return {k: v for k, v in out.items() if v is not None}


class InfobipViberAdapter:
    name = NAME
    channels: tuple[str, ...] = ("viber",)

    def __init__(self, *, allowed_networks: Sequence[IPNetwork] | None = None) -> None:
        self.http = ProviderHTTP(
            "Infobip",
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
        return InfobipConfig.from_settings(settings).as_settings()

    def send(self, message: Outbound) -> SendResult:
        config = InfobipConfig.from_settings(message.settings)
        body = {"messages": [build_message(message)]}
        key = config.api_key[-12:]
        self.pacer.wait(key, config.rate_limit)
        answer = self.http.request(
            "POST",
            f"{config.base_url}/viber/2/messages",
            headers={"Authorization": f"App {config.api_key}"},
            json=body,
            timeout=config.timeout,
        )
        try:
            return SendResult(read_answer(answer))
        except RetriableError as exc:
            if exc.delay:
                self.pacer.hold(key, exc.delay)
            raise

    def close(self) -> None:
        self.http.close()


def build_message(message: Outbound) -> dict[str, Any]:
    if not message.sender:
        raise PermanentError("a Viber business message needs a sender", code=1011)
    text = message.text or ""
    if len(text) > MAX_TEXT:
        raise PermanentError(f"text is at most {MAX_TEXT} characters", code=1012)
    content: dict[str, Any]
    if message.image:
        content = {"type": "IMAGE", "url": message.image}
        if text:
            content["text"] = text
    else:
        content = {"type": "TEXT", "text": text}
    if message.action:
        content["button"] = {"text": message.action["title"], "url": message.action["url"]}
    return {
        "sender": message.sender,
        "destinations": [{"to": message.phone, "messageId": message.message_id}],
        "content": content,
        "options": {"validityPeriod": {"amount": message.ttl, "timeUnit": "SECONDS"}},
    }


def read_answer(answer: httpx.Response) -> str:
    delay = parse_retry_after(answer.headers.get("retry-after"), cap=MAX_PROVIDER_RETRY_AFTER)
    payload = common.json_of(answer)
    error = _service_error(payload)
    text = f"Infobip HTTP {answer.status_code}" + (f": {error}" if error else "")
    if answer.status_code == 429:
        raise RetriableError(text, delay=delay if delay is not None else 1.0)
    if answer.status_code >= 500 or answer.status_code == 408:
        raise RetriableError(text, delay=delay)
    if 300 <= answer.status_code < 400:
        raise PermanentError(text + " (base_url redirects)", status="error", code=SETTINGS_ERROR)
    if answer.status_code in (401, 403):
        raise PermanentError(text, status="error", code=AUTH_ERROR)
    if answer.status_code == 404:
        raise PermanentError(text, status="error", code=SETTINGS_ERROR)
    if answer.status_code >= 400:
        raise PermanentError(text, status="rejected", code=1021)
    first = None
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        first = payload["messages"][0] if payload["messages"] else None
    message_id = first.get("messageId") if isinstance(first, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise RetriableError(f"unexpected answer from Infobip: HTTP {answer.status_code}")
    status = first.get("status") if isinstance(first, dict) else None
    if isinstance(status, dict) and status.get("groupId") == 5:  # REJECTED at once
        raise PermanentError(
            f"Infobip rejected the message: {status.get('name')}: {status.get('description')}",
            status="rejected",
            code=1030,
        )
    return message_id


def _service_error(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    request_error = payload.get("requestError")
    if not isinstance(request_error, dict):
        return None
    exc = request_error.get("serviceException")
    if not isinstance(exc, dict):
        return None
    return f"{exc.get('messageId')}: {exc.get('text')}"


register(InfobipViberAdapter())


# --- inbound: reports and replies ------------------------------------------------------------


def verify_basic(header: str | None, secret: str) -> bool:
    """HTTP Basic credentials whose password is the connection's ``webhook_secret``."""
    if not secret or not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return hmac.compare_digest(password.encode(), secret.encode())


@dataclass(frozen=True)
class InfobipEvent:
    kind: str  # "status" | "inbound"
    provider_message_id: str | None = None
    status: str | None = None
    code: int | None = None
    error: str | None = None
    phone: str | None = None  # inbound: the user's number (digits)
    to: str | None = None
    text: str | None = None


def parse_results(payload: Any) -> list[InfobipEvent]:
    """Every report and reply of a ``{"results": [...]}`` body; shapes not understood are
    skipped (never raises)."""
    results = payload.get("results") if isinstance(payload, dict) else None
    out: list[InfobipEvent] = []
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, dict):
            continue
        event = _result(item)
        if event is not None:
            out.append(event)
    return out


def _result(item: dict[str, Any]) -> InfobipEvent | None:
    message_id = item.get("messageId")
    if "message" in item or "content" in item:  # a user's reply
        sender = item.get("sender") or item.get("from")
        body = common.as_dict(item.get("message")) or common.as_dict(item.get("content"))
        text = body.get("text")
        if not isinstance(sender, str) or not sender.lstrip("+").isdigit():
            return None
        return InfobipEvent(
            "inbound",
            phone=sender.lstrip("+"),
            to=item.get("to") if isinstance(item.get("to"), str) else None,
            text=text if isinstance(text, str) else "",
        )
    if not isinstance(message_id, str) or not message_id:
        return None
    if item.get("seenAt"):
        return InfobipEvent("status", message_id, "read")
    status = item.get("status")
    if not isinstance(status, dict):
        return None
    group = status.get("groupId")
    found = GROUPS.get(group) if isinstance(group, int) else None
    if found is None:
        return None  # PENDING: nothing new
    if found == "delivered":
        return InfobipEvent("status", message_id, "delivered")
    error = common.as_dict(item.get("error"))
    name = str(error.get("name") or status.get("name") or "")
    code = ERROR_NAMES.get(name, 1000)
    description = error.get("description") or status.get("description") or name
    return InfobipEvent("status", message_id, found, code, f"Infobip: {name}: {description}")
