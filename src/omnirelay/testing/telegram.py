"""A local Telegram Bot API for tests and benchmarks: answers as Telegram documents the
API (https://core.telegram.org/bots/api), on 127.0.0.1.

    with TelegramPeer() as peer:
        settings = peer.settings()            # a telegram connection pointing here
        peer.start_chat(5550001)              # a user who opened the bot
        update = peer.user_message(5550001, "hi")   # queued for getUpdates
        peer.sent                             # every accepted send, (method, body)

- ``POST /bot<token>/<method>`` with a JSON (or form) body; every answer is
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
  "parameters"?}``. A wrong token: 401 Unauthorized; an unknown method: 404 Not Found.
- sendMessage / sendPhoto / sendDocument: ``chat not found`` (400) for a chat that never
  started the bot, ``Forbidden: bot was blocked by the user`` (403) for a blocked one,
  the documented 400s for an empty or long text, bad URLs and bad inline keyboards;
  else a Message (``message_id`` counting per chat).
- ``flood_limit``: sends per second above which the answer is 429 with
  ``parameters.retry_after`` (Telegram's flood control).
- getUpdates long-polls (``timeout`` seconds) for updates from ``offset``, dropping the
  ones before it (confirmed), and is refused (409) while a webhook is set; setWebhook /
  deleteWebhook / getWebhookInfo keep the webhook; ``post_update`` POSTs an update to a
  (loopback) webhook URL with the secret token header, as Telegram does.
- Faults: ``script(method, body, n)`` may return ``(status, body, headers)`` for the
  n-th send (bytes bodies are sent as they are: garbage); ``drop`` closes that many
  next connections without an answer; ``start_chaos`` drops and fails sends at random.

The server, its bounds (bodies, records) and its lifetime are testing/httppeer.py's.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from omnirelay.testing.httppeer import Answer, HttpPeer, PeerRequest

Script = Callable[[str, dict[str, Any], int], Answer | None]

MAX_RECORDS = 100_000
SENDS = ("sendMessage", "sendPhoto", "sendDocument")
_PATH = re.compile(r"/bot([^/]+)/([A-Za-z]+)")
_FILE = re.compile(r"/file/bot([^/]+)/([A-Za-z0-9_./-]+)")


def tg_error(code: int, description: str, *, retry_after: int | None = None) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return code, body, {}


def _ok(result: Any) -> Answer:
    return 200, {"ok": True, "result": result}, {}


class TelegramPeer(HttpPeer):
    max_body = 1 << 20
    handler_timeout = 60.0  # getUpdates long-polls up to 50 s

    def __init__(
        self,
        *,
        token: str = "123456789:AAH-omnirelay-test-token_0123456789",
        username: str = "omnirelay_test_bot",
        lifetime: float = 300.0,
    ) -> None:
        super().__init__(lifetime=lifetime)
        self.token = token
        self.username = username
        self.bot_id = int(token.partition(":")[0])
        self.script: Script | None = None
        self.flood_limit: float | None = None  # sends/s before 429
        self.retry_after = 1
        self.chats: set[int] = set()
        self.blocked: set[int] = set()
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.sent_at: list[float] = []  # monotonic time of each accepted send
        self.webhook: dict[str, Any] | None = None
        self.updates: list[dict[str, Any]] = []  # not yet confirmed by an offset
        self.methods: list[str] = []  # every method called, in order
        self.files: dict[str, bytes] = {}  # file_id -> content, for getFile and /file/
        self.downloads: list[str] = []  # file paths downloaded
        self.file_sizes: dict[str, int] = {}  # a size getFile states other than the real one
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._sends = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._recent: collections.deque[float] = collections.deque()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """telegram connection settings pointing at this peer (no rate limit)."""
        return {"bot_token": self.token, "base_url": self.base_url, "rate_limit": 0, **overrides}

    def stop(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()  # long polls end now
        super().stop()

    # -- the peer's hooks --

    def scripted(self, req: PeerRequest) -> bool:
        match = _PATH.fullmatch(urlsplit(req.path).path)
        return match is not None and match.group(2) in SENDS

    def intercept(self, req: PeerRequest) -> Answer | str | None:
        return None  # Telegram-shaped scripts see the parsed send (_send)

    def server_error(self) -> Answer:
        return tg_error(500, "Internal Server Error")

    def too_large(self) -> Answer:
        return tg_error(413, "Request Entity Too Large")

    # -- users --

    def start_chat(self, chat_id: int) -> None:
        """A user who opened the bot: the bot may write to them."""
        self.chats.add(chat_id)

    def block(self, chat_id: int) -> None:
        self.blocked.add(chat_id)

    def make_update(self, chat_id: int, text: str | None = None, **message: Any) -> dict[str, Any]:
        """An Update with a private message from user ``chat_id`` (``contact=...``,
        ``caption=...`` and other Message fields as keyword arguments)."""
        self.chats.add(chat_id)
        body: dict[str, Any] = {
            "message_id": next(self._chat_counter(chat_id)),
            "from": {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": "en"},
            "chat": {"id": chat_id, "first_name": "Test", "type": "private"},
            "date": int(time.time()),
            **message,
        }
        if text is not None:
            body["text"] = text
            if text.startswith("/"):
                command = text.split(" ", 1)[0]
                body["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        return {"update_id": next(self._ids), "message": body}

    def user_message(self, chat_id: int, text: str | None = None, **message: Any) -> dict[str, Any]:
        """A message from a user, queued for getUpdates."""
        update = self.make_update(chat_id, text, **message)
        with self._cond:
            self.updates.append(update)
            self._cond.notify_all()
        return update

    def add_file(self, data: bytes) -> str:
        """A file a user sent (its ``file_id``): getFile answers its path, and
        ``GET /file/bot<token>/<path>`` serves it."""
        file_id = f"AgAC{next(self._ids):08d}x"
        self.files[file_id] = data
        return file_id

    def user_photo(self, chat_id: int, data: bytes, caption: str | None = None) -> dict[str, Any]:
        """A photo from a user (a small and a full size, as Telegram sends), queued."""
        thumb, full = self.add_file(data[:64]), self.add_file(data)
        sizes = [
            {"file_id": thumb, "file_unique_id": thumb, "width": 90, "height": 90},
            {"file_id": full, "file_unique_id": full, "width": 800, "height": 600},
        ]
        sizes[0]["file_size"], sizes[1]["file_size"] = len(data[:64]), len(data)
        extra: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            extra["caption"] = caption
        return self.user_message(chat_id, None, **extra)

    def user_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        file_size: int | None = None,
    ) -> dict[str, Any]:
        """A document from a user, queued (``file_size``: what Telegram states)."""
        file_id = self.add_file(data)
        if file_size is not None:
            self.file_sizes[file_id] = file_size
        document = {
            "file_id": file_id,
            "file_unique_id": file_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(data) if file_size is None else file_size,
        }
        extra: dict[str, Any] = {"document": document}
        if caption is not None:
            extra["caption"] = caption
        return self.user_message(chat_id, None, **extra)

    def post_update(self, url: str, update: dict[str, Any], secret: str | None = None) -> int:
        """POST an update to a webhook as Telegram does (``secret``: the header's value,
        default the one setWebhook was given). Loopback only. The HTTP status."""
        if (urlsplit(url).hostname or "") not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("TelegramPeer posts to loopback URLs only")
        if secret is None and self.webhook is not None:
            secret = self.webhook.get("secret_token")
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        data = json.dumps(update).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def _chat_counter(self, chat_id: int) -> itertools.count[int]:
        return self._message_ids.setdefault(chat_id, itertools.count(1))

    # -- the API --

    def route(self, req: PeerRequest) -> Answer:
        parts = urlsplit(req.path)
        download = _FILE.fullmatch(parts.path)
        if download is not None:
            return self._download(*download.groups())
        match = _PATH.fullmatch(parts.path)
        if match is None:
            return tg_error(404, "Not Found")
        token, method = match.groups()
        if token != self.token:
            return tg_error(401, "Unauthorized")
        body = _body(req.body, req.headers.get("content-type") or "", parts.query)
        with self._cond:
            self.methods.append(method)
            del self.methods[:-MAX_RECORDS]
        return self._route(method, body)

    def _download(self, token: str, path: str) -> Answer:
        data = self.files.get(path.rsplit("/", 1)[-1]) if token == self.token else None
        if data is None:
            return tg_error(404, "Not Found")
        with self._cond:
            self.downloads.append(path)
        return 200, data, {"Content-Type": "application/octet-stream"}

    def _route(self, method: str, body: dict[str, Any]) -> Answer:
        if method == "getFile":
            file_id = str(body.get("file_id") or "")
            if file_id not in self.files:
                return tg_error(400, "Bad Request: invalid file_id")
            return _ok(
                {
                    "file_id": file_id,
                    "file_unique_id": file_id,
                    "file_size": self.file_sizes.get(file_id, len(self.files[file_id])),
                    "file_path": f"documents/{file_id}",
                }
            )
        if method == "getMe":
            return _ok(
                {
                    "id": self.bot_id,
                    "is_bot": True,
                    "first_name": "Omnirelay Test",
                    "username": self.username,
                    "can_join_groups": True,
                }
            )
        if method in SENDS:
            return self._send(method, body)
        if method == "getUpdates":
            return self._get_updates(body)
        if method == "setWebhook":
            url = body.get("url")
            if not isinstance(url, str) or not url:
                return self._delete_webhook()
            if not url.startswith("https://"):
                return tg_error(
                    400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
                )
            secret = body.get("secret_token")
            if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
                return tg_error(400, "Bad Request: secret token contains unallowed characters")
            with self._cond:
                self.webhook = {"url": url, "secret_token": secret}
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}, {}
        if method == "deleteWebhook":
            return self._delete_webhook()
        if method == "getWebhookInfo":
            hook = self.webhook or {}
            return _ok(
                {
                    "url": hook.get("url", ""),
                    "has_custom_certificate": False,
                    "pending_update_count": len(self.updates),
                }
            )
        return tg_error(404, "Not Found")

    def _delete_webhook(self) -> Answer:
        with self._cond:
            was, self.webhook = self.webhook, None
        text = "Webhook was deleted" if was else "Webhook is already deleted"
        return 200, {"ok": True, "result": True, "description": text}, {}

    def _get_updates(self, body: dict[str, Any]) -> Answer:
        if self.webhook is not None:
            return tg_error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(body.get("offset")) or 0
        timeout = min(max(_int(body.get("timeout")) or 0, 0), 50)
        limit = min(max(_int(body.get("limit")) or 100, 1), 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            # An offset confirms every update before it: Telegram forgets them.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and not self._closing.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return _ok(list(self.updates[:limit]))

    def _send(self, method: str, body: dict[str, Any]) -> Answer:
        n = next(self._sends)
        script = self.script
        if script is not None:
            scripted = script(method, body, n)
            if scripted is not None:
                return scripted
        problem = self._check(method, body)
        if problem is not None:
            return problem
        chat_id = _int(body.get("chat_id"))
        assert chat_id is not None
        now = time.monotonic()
        with self._cond:
            if self.flood_limit is not None:
                while self._recent and self._recent[0] <= now - 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self.flood_limit:
                    return tg_error(
                        429,
                        f"Too Many Requests: retry after {self.retry_after}",
                        retry_after=self.retry_after,
                    )
                self._recent.append(now)
            self.sent.append((method, body))
            self.sent_at.append(now)
            del self.sent[:-MAX_RECORDS]
            del self.sent_at[:-MAX_RECORDS]
            message_id = next(self._chat_counter(chat_id))
        result: dict[str, Any] = {
            "message_id": message_id,
            "from": {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Omnirelay Test",
                "username": self.username,
            },
            "chat": {"id": chat_id, "first_name": "Test", "type": "private"},
            "date": int(time.time()),
        }
        for key in ("text", "caption", "reply_markup"):
            if key in body:
                result[key] = body[key]
        if method == "sendPhoto":
            result["photo"] = [
                {
                    "file_id": f"AgAD{message_id}",
                    "file_unique_id": "u",
                    "width": 90,
                    "height": 90,
                    "file_size": 1000,
                }
            ]
        if method == "sendDocument":
            result["document"] = {"file_id": f"BQAD{message_id}", "file_unique_id": "d"}
        return _ok(result)

    def _check(self, method: str, body: dict[str, Any]) -> Answer | None:
        """The documented refusals of a send."""
        chat_id = _int(body.get("chat_id"))
        if chat_id is None:
            return tg_error(400, "Bad Request: chat_id is empty")
        if chat_id not in self.chats:
            return tg_error(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            return tg_error(403, "Forbidden: bot was blocked by the user")
        if method == "sendMessage":
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                return tg_error(400, "Bad Request: message text is empty")
            if len(text) > 4096:
                return tg_error(400, "Bad Request: message is too long")
        else:
            field = "photo" if method == "sendPhoto" else "document"
            link = body.get(field)
            if not isinstance(link, str) or urlsplit(link).scheme not in ("http", "https"):
                return tg_error(400, "Bad Request: wrong HTTP URL specified")
            caption = body.get("caption")
            if caption is not None and (not isinstance(caption, str) or len(caption) > 1024):
                return tg_error(400, "Bad Request: message caption is too long")
        return _check_markup(body.get("reply_markup"))


def _check_markup(markup: Any) -> Answer | None:
    if markup is None:
        return None
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return tg_error(400, "Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return tg_error(
            400,
            "Bad Request: can't parse inline keyboard button: "
            "InlineKeyboardButtons must be an array",
        )
    for row in rows:
        if not isinstance(row, list):
            return tg_error(
                400, "Bad Request: can't parse inline keyboard button: a row must be an array"
            )
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                return tg_error(
                    400,
                    "Bad Request: can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard",
                )
            kinds = [k for k in ("url", "callback_data") if k in button]
            if len(kinds) != 1:
                return tg_error(
                    400,
                    "Bad Request: can't parse inline keyboard button: "
                    "exactly one of url or callback_data",
                )
            if "url" in button and urlsplit(str(button["url"])).scheme not in (
                "http",
                "https",
                "tg",
            ):
                return tg_error(400, "Bad Request: BUTTON_URL_INVALID")
            if "callback_data" in button and len(str(button["callback_data"]).encode()) > 64:
                return tg_error(400, "Bad Request: BUTTON_DATA_INVALID")
    return None


def _body(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    """JSON, form or query parameters: the Bot API takes all three."""
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    if not raw:
        return params
    if "json" in content_type:
        try:
            loaded = json.loads(raw)
        except ValueError:
            return params
        return {**params, **loaded} if isinstance(loaded, dict) else params
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", errors="replace")).items()}
    return {**params, **form}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value):
        return int(value)
    return None


__all__ = ["Answer", "Script", "TelegramPeer", "tg_error"]
