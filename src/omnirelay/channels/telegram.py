"""The ``telegram`` provider: a Telegram bot, through the raw Bot API over ProviderHTTP
(ADR 31; docs/channels/telegram.md).

Outbound: ``POST {base_url}/bot<token>/sendMessage`` (sendPhoto with an image,
sendDocument with a file link), an inline keyboard from the step's ``action`` or seed
004 ``buttons``. The recipient is a chat id, which the accept path found for the phone
(``extra["recipient"]``, from the contact's ``telegramId``); the provider message id is
``<chat_id>:<message_id>``. Every answer is ``{"ok", "result" | "error_code",
"description", "parameters"}``; ``error_for`` maps it (the same table as the docs).

The adapter never touches the database; ``send`` is synchronous (a worker thread calls it).
Inbound updates are read by channels/telegram_updates.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
from omnirelay.media.fetch import FETCHERS, Download, TooLarge
from omnirelay.media.storage import MAX_SIZE
from omnirelay.net.provider_http import ProviderHTTP
from omnirelay.net.ssrf import IPNetwork

DEFAULT_BASE_URL = "https://api.telegram.org"
DEFAULT_TIMEOUT = 15.0
MAX_TIMEOUT = 120.0
# Telegram's documented broadcast limit: about 30 messages a second per bot.
DEFAULT_RATE = 30.0
MAX_RATE = 1000.0
MAX_WAIT = 2.0  # seconds a send waits for the rate limit before it is retried later
PATIENT_TRY = 4  # from this try of a step on, a send waits for its slot (5 tries a step)
MAX_TEXT = 4096
MAX_CAPTION = 1024

_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,200}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # setWebhook's secret_token alphabet
KEYS = ("bot_token", "base_url", "webhook_url", "webhook_secret", "rate_limit", "timeout")

# --- the error mapping (docs/channels/telegram.md keeps the same table) -----------------

AUTH_ERROR = 1003
TEL_ERROR = 1010  # no chat for the phone / chat not found
TEXT_ERROR = 1012
SETTINGS_ERROR = 1016
INVALID_ARGUMENT = 1021
IMAGE_ERROR = 1036
BUTTON_ERROR = 1037
BLOCKED = 1058  # "User can't make that action": seed 001 has no Telegram code of its own
UNKNOWN_ERROR = 1000

# 400 descriptions -> code (lower case, matched as substrings; the rest is 1021).
BAD_REQUEST: tuple[tuple[str, int], ...] = (
    ("chat not found", TEL_ERROR),
    ("user not found", TEL_ERROR),
    ("peer_id_invalid", TEL_ERROR),
    ("message is too long", TEXT_ERROR),
    ("text must be non-empty", TEXT_ERROR),
    ("message text is empty", TEXT_ERROR),
    ("can't parse entities", TEXT_ERROR),
    ("caption is too long", TEXT_ERROR),
    ("button_url_invalid", BUTTON_ERROR),
    ("wrong http url", IMAGE_ERROR),
    ("failed to get http url content", IMAGE_ERROR),
    ("wrong file identifier", IMAGE_ERROR),
    ("wrong type of the web page content", IMAGE_ERROR),
)
# 403 descriptions: the user (or Telegram) stops the bot reaching this chat.
FORBIDDEN = (
    "bot was blocked by the user",
    "user is deactivated",
    "bot can't initiate conversation",
    "bot was kicked",
)


def error_for(http_status: int, payload: Any) -> Exception:
    """The RetriableError/PermanentError of a Bot API answer that is not ``ok``."""
    body = payload if isinstance(payload, dict) else {}
    code = body.get("error_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else http_status
    described = body.get("description")
    if not isinstance(described, str) or not described:
        described = f"HTTP {http_status}"
    text = f"Telegram error {code}: {described[:300]}"
    lower = described.lower()
    if code == 429:
        params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        after = params.get("retry_after") if isinstance(params, dict) else None
        delay = (
            float(after) if isinstance(after, int | float) and not isinstance(after, bool) else None
        )
        return RetriableError(text, delay=delay if delay is None or delay >= 0 else None)
    if code >= 500 or not isinstance(payload, dict):
        return RetriableError(text)
    if code in (401, 404):  # a revoked or mistyped token: the connection, not the message
        return PermanentError(text, status="error", code=AUTH_ERROR)
    if code == 403:
        if any(f in lower for f in FORBIDDEN):
            return PermanentError(text, status="undelivered", code=BLOCKED)
        return PermanentError(text, status="rejected", code=BLOCKED)
    if code == 400:
        for needle, mapped in BAD_REQUEST:
            if needle in lower:
                status = "undelivered" if mapped == TEL_ERROR else "rejected"
                return PermanentError(text, status=status, code=mapped)
        return PermanentError(text, status="rejected", code=INVALID_ARGUMENT)
    return PermanentError(text, status="rejected", code=UNKNOWN_ERROR)


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TelegramConfig:
    bot_token: str
    base_url: str = DEFAULT_BASE_URL
    webhook_url: str | None = None  # public URL of /hooks/telegram/<id>; None: long polling
    webhook_secret: str | None = None  # X-Telegram-Bot-Api-Secret-Token
    rate_limit: float = DEFAULT_RATE  # sends per second per bot; 0: no limit
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TelegramConfig:
        """Parse and normalise; ValueError naming what is wrong (no network use)."""
        if not isinstance(settings, Mapping):
            raise ValueError("settings must be an object")
        unknown = sorted(set(settings) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown telegram setting {unknown[0]!r}")
        token = settings.get("bot_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ValueError('bot_token is required: the token @BotFather gave ("123456:ABC-...")')
        base = settings.get("base_url") or DEFAULT_BASE_URL
        if not isinstance(base, str):
            raise ValueError("base_url must be a string")
        base = _http_url(base, "base_url", query=False)
        hook = settings.get("webhook_url")
        if hook is not None and hook != "":
            if not isinstance(hook, str):
                raise ValueError("webhook_url must be a string")
            hook = _http_url(hook, "webhook_url", query=True)
            if not hook.startswith("https://"):
                raise ValueError("webhook_url must be https (Telegram delivers webhooks over TLS)")
        else:
            hook = None
        secret = settings.get("webhook_secret")
        if secret is not None and (not isinstance(secret, str) or not _SECRET.fullmatch(secret)):
            raise ValueError("webhook_secret: 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if hook is not None and not secret:
            raise ValueError("webhook_secret is required with webhook_url")
        rate = _number(settings.get("rate_limit", DEFAULT_RATE), "rate_limit", 0, MAX_RATE, True)
        timeout = _number(settings.get("timeout", DEFAULT_TIMEOUT), "timeout", 0, MAX_TIMEOUT)
        return cls(token, base, hook, secret or None, rate, timeout)

    def as_settings(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in KEYS}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def bot_id(self) -> str:
        return self.bot_token.partition(":")[0]


def _number(value: Any, name: str, low: float, high: float, zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value <= high or (zero and value == 0)):
        raise ValueError(f"{name} must be a number in ({low:g}, {high:g}]")
    return float(value)


def _http_url(url: str, name: str, *, query: bool) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} must not carry credentials")
    if parts.fragment or (parts.query and not query):
        raise ValueError(f"{name} must not have a query or a fragment")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ValueError(f"{name} has an invalid port") from None
    return url.strip().rstrip("/")


# --- building requests -------------------------------------------------------------------


def keyboard(message: Outbound) -> dict[str, Any] | None:
    """``reply_markup`` of the step: the /v3 ``action`` {title, url} as one URL button;
    seed 004 ``buttons`` [{type, text, link}] one button a row (a link opens it, a button
    without one sends its text back as callback data)."""
    rows: list[list[dict[str, str]]] = []
    if message.action and message.action.get("title") and message.action.get("url"):
        rows.append([{"text": message.action["title"], "url": message.action["url"]}])
    for button in message.extra.get("buttons") or ():
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            continue
        title = button["text"][:64]
        link = button.get("link")
        if isinstance(link, str) and link:
            rows.append([{"text": title, "url": link}])
        else:
            rows.append(
                [{"text": title, "callback_data": title.encode()[:64].decode(errors="ignore")}]
            )
    return {"inline_keyboard": rows} if rows else None


def build_request(message: Outbound, chat_id: str) -> tuple[str, dict[str, Any]]:
    """The Bot API method and its JSON body for one route step."""
    text = message.text or ""
    body: dict[str, Any] = {"chat_id": chat_id}
    document = message.extra.get("url") if isinstance(message.extra.get("url"), str) else None
    if message.image or document:
        if len(text) > MAX_CAPTION:
            raise PermanentError(f"a caption is at most {MAX_CAPTION} characters", code=TEXT_ERROR)
        method = "sendPhoto" if message.image else "sendDocument"
        body["photo" if message.image else "document"] = message.image or document
        if text:
            body["caption"] = text
    else:
        if not text.strip():
            raise PermanentError("a Telegram message needs a text", code=TEXT_ERROR)
        if len(text) > MAX_TEXT:
            raise PermanentError(f"a text is at most {MAX_TEXT} characters", code=TEXT_ERROR)
        method, body["text"] = "sendMessage", text
    markup = keyboard(message)
    if markup is not None:
        body["reply_markup"] = markup
    return method, body


# --- the adapter -------------------------------------------------------------------------


class TelegramAdapter:
    name = "telegram"
    recipient_field = "telegramId"  # the contact field a send is addressed to
    channels: tuple[str, ...] = ("telegram",)

    def __init__(self, *, allowed_networks: Sequence[IPNetwork] | None = None) -> None:
        # A base_url other than api.telegram.org (a local Bot API server, a proxy, the
        # test peer) is tenant-aimed and passes the SSRF guard of ProviderHTTP.
        self.http = ProviderHTTP(
            "Telegram",
            trusted=(DEFAULT_BASE_URL,),
            settings_error_code=SETTINGS_ERROR,
            allowed_networks=allowed_networks,
        )
        # Telegram's per-bot limit, held as every messenger adapter holds its provider's.
        self.pacer = common.Pacer()

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...] | None:
        return self.http.allowed_networks

    @allowed_networks.setter
    def allowed_networks(self, value: Sequence[IPNetwork] | None) -> None:
        self.http.allowed_networks = None if value is None else tuple(value)

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        config = TelegramConfig.from_settings(settings)
        self.http.validate_base_url(config.base_url)
        return config.as_settings()

    def send(self, message: Outbound) -> SendResult:
        config = TelegramConfig.from_settings(message.settings)
        chat_id = message.extra.get("recipient")
        if not isinstance(chat_id, str | int) or isinstance(chat_id, bool) or chat_id == "":
            raise PermanentError(
                f"no Telegram chat known for +{message.phone}: the user has to start the bot "
                "(a /start link) or write to it first",
                status="undelivered",
                code=TEL_ERROR,
            )
        method, body = build_request(message, str(chat_id))
        # A slot more than MAX_WAIT away is retried later instead of holding a dispatch
        # thread; a step's late tries wait for it (the limit must not use up its tries).
        patient = message.try_number >= PATIENT_TRY
        self.pacer.wait(config.bot_id, config.rate_limit, most=None if patient else MAX_WAIT)
        try:
            result = self.call(config, method, body)
        except RetriableError as exc:
            if exc.delay:  # a 429's retry_after holds every send of the bot
                self.pacer.hold(config.bot_id, exc.delay)
            raise
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise RetriableError("unexpected answer from Telegram: ok without a message_id")
        # Telegram answers with the message once it is in the chat: delivered. It never
        # reports reads to bots.
        return SendResult(f"{chat_id}:{message_id}", (ProviderEvent("status", status="delivered"),))

    # -- the Bot API --

    def call(
        self,
        config: TelegramConfig,
        method: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """One Bot API method; its ``result``, or the mapped error."""
        url = f"{config.base_url}/bot{config.bot_token}/{method}"
        answer = self.http.request("POST", url, json=body or {}, timeout=timeout or config.timeout)
        payload = _json(answer)
        if answer.is_success and isinstance(payload, dict) and payload.get("ok") is True:
            return payload.get("result")
        if answer.is_success:
            # A 2xx that is not the Bot API (a proxy, a captive portal): nothing says the
            # message was taken, so it is tried again; the attempt keeps this text.
            raise RetriableError(
                f"unexpected answer from Telegram: HTTP {answer.status_code} {_snippet(answer)!r}"
            )
        raise error_for(answer.status_code, payload)

    def connect(self, config: TelegramConfig, hook_url: str | None) -> None:
        """setWebhook (with the secret token) when a public URL is set; else
        deleteWebhook, so that getUpdates may poll."""
        if hook_url is not None:
            self.call(
                config,
                "setWebhook",
                {
                    "url": hook_url,
                    "secret_token": config.webhook_secret,
                    "allowed_updates": ["message"],
                },
            )
        else:
            self.call(config, "deleteWebhook", {"drop_pending_updates": False})

    def get_updates(self, config: TelegramConfig, offset: int, wait: float) -> list[Any]:
        """getUpdates from ``offset`` (confirming every earlier update), long polling up
        to ``wait`` seconds."""
        result = self.call(
            config,
            "getUpdates",
            {"offset": offset, "timeout": int(wait), "allowed_updates": ["message"]},
            timeout=wait + config.timeout,
        )
        if not isinstance(result, list):
            raise RetriableError("unexpected answer from Telegram: getUpdates without a list")
        return result

    def download(self, settings: Mapping[str, Any], file_id: str) -> Download:
        """A file a user sent the bot: getFile, then its bytes from
        ``{base_url}/file/bot<token>/<file_path>`` (both through ProviderHTTP). The size
        Telegram states is checked before the download, the body's after."""
        try:
            config = TelegramConfig.from_settings(settings)
        except ValueError as exc:
            raise PermanentError(f"telegram settings: {exc}") from None
        result = self.call(config, "getFile", {"file_id": file_id})
        if not isinstance(result, dict) or not isinstance(result.get("file_path"), str):
            raise PermanentError("Telegram getFile answered without a file_path")
        size = result.get("file_size")
        if isinstance(size, int) and size > MAX_SIZE:
            raise TooLarge(size)
        url = f"{config.base_url}/file/bot{config.bot_token}/{result['file_path']}"
        answer = self.http.request("GET", url, timeout=config.timeout)
        if answer.status_code >= 500 or answer.status_code == 429:
            raise RetriableError(f"Telegram file download: HTTP {answer.status_code}")
        if not answer.is_success:
            raise PermanentError(f"Telegram file download: HTTP {answer.status_code}")
        name = str(result["file_path"]).rsplit("/", 1)[-1] or None
        return Download(answer.content, name, answer.headers.get("content-type"))

    def close(self) -> None:
        self.http.close()


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _snippet(answer: httpx.Response) -> str:
    return answer.content[:80].decode("utf-8", errors="replace")


_adapter = TelegramAdapter()
register(_adapter)
# Inbound photos and documents are downloaded by the inbound.attachments drain (ADR 37).
FETCHERS["telegram"] = _adapter.download

__all__ = ["TelegramAdapter", "TelegramConfig", "build_request", "error_for", "keyboard"]
