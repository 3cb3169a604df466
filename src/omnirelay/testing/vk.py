"""A local VK API for tests and benchmarks, answering as VK documents.

``POST /method/<name>`` (form fields, ``v`` required, the community token as
``Authorization: Bearer`` or ``access_token``) answers ``{"response": ...}`` or
``{"error": {"error_code", "error_msg", "request_params"}}`` with HTTP 200:

- ``messages.send``: ``user_id`` and ``random_id`` required (100); a user in ``denied``
  gets 901, in ``blacklisted`` 900; a bad ``keyboard`` 911; the same ``random_id`` to the
  same user answers the first message's id and sends nothing (VK's deduplication);
- ``photos.getMessagesUploadServer`` -> an ``upload_url`` on this peer, which takes a
  multipart ``photo`` and answers ``{server, photo, hash}``; ``photos.saveMessagesPhoto``
  -> ``[{id, owner_id, access_key}]``;
- ``GET /static/<name>``: a small JPEG, to use as an image link;
- ``rate_limit``: beyond it, error 6 "Too many requests per second".

``callback(type, ...)`` builds a Callback API body (``group_id``, ``secret``,
``event_id``, ``v``) for a test to POST to /hooks/vk/<id>.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import secrets
from typing import Any
from urllib.parse import parse_qs

from omnirelay.testing.httppeer import Answer, HttpPeer, PeerRequest

INVALID = "One of the parameters specified was missing or invalid: "
# The smallest JPEG worth the name (a 1x1 pixel).
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c"
    "0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e"
    "333432ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405"
    "060708090a0bffda0008010100003f00d2cf20ffd9"
)


def vk_error(code: int, message: str, params: dict[str, str] | None = None) -> Answer:
    request_params = [
        {"key": k, "value": v} for k, v in (params or {}).items() if k != "access_token"
    ]
    return (
        200,
        {"error": {"error_code": code, "error_msg": message, "request_params": request_params}},
        {},
    )


class VkPeer(HttpPeer):
    def __init__(
        self,
        *,
        access_token: str = "vk1.a.community-token",
        group_id: int = 218_000_111,
        secret: str = "callback-secret-1",
        confirmation_code: str = "a1b2c3d4",
        lifetime: float = 300.0,
        rate_limit: float | None = None,
    ) -> None:
        super().__init__(lifetime=lifetime, rate_limit=rate_limit)
        self.access_token = access_token
        self.group_id = group_id
        self.secret = secret
        self.confirmation_code = confirmation_code
        self.messages: list[dict[str, str]] = []  # accepted messages.send parameters
        self.uploads: list[bytes] = []
        self.denied: set[int] = set()
        self.blacklisted: set[int] = set()
        self._ids = itertools.count(1001)
        self._photos = itertools.count(457_239_017)
        self._sent: dict[tuple[str, str], int] = {}  # (user, random_id) -> message id

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "group_id": self.group_id,
            "secret": self.secret,
            "confirmation_code": self.confirmation_code,
            "base_url": self.base_url,
            **overrides,
        }

    def image_url(self, name: str = "photo.jpg") -> str:
        return f"{self.base_url}/static/{name}"

    def scripted(self, req: PeerRequest) -> bool:
        return req.path == "/method/messages.send"

    def route(self, req: PeerRequest) -> Answer:
        if req.method == "GET" and req.path.startswith("/static/"):
            return 200, JPEG, {"Content-Type": "image/jpeg"}
        if req.method == "POST" and req.path.startswith("/upload/"):
            return self._upload(req)
        if req.method != "POST" or not req.path.startswith("/method/"):
            return 404, b"Not Found", {"Content-Type": "text/plain"}
        params = {k: v[0] for k, v in parse_qs(req.body.decode(errors="replace")).items()}
        token = params.get("access_token") or req.headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        if token != self.access_token:
            return vk_error(5, "User authorization failed: invalid access_token (4).", params)
        if not params.get("v"):
            return vk_error(8, "Invalid request: v (version) is required", params)
        if self.over_limit():
            return vk_error(6, "Too many requests per second", params)
        method = req.path.removeprefix("/method/")
        if method == "messages.send":
            return self._send(params)
        if method == "photos.getMessagesUploadServer":
            n = next(self._photos)
            return (
                200,
                {
                    "response": {
                        "album_id": -3,
                        "upload_url": f"{self.base_url}/upload/{n}",
                        "user_id": 0,
                        "group_id": self.group_id,
                    }
                },
                {},
            )
        if method == "photos.saveMessagesPhoto":
            if not params.get("photo") or not params.get("hash") or not params.get("server"):
                return vk_error(
                    100,
                    "One of the parameters specified was missing or invalid: photo is undefined",
                    params,
                )
            photo = json.loads(params["photo"])
            return (
                200,
                {
                    "response": [
                        {
                            "album_id": -3,
                            "date": 1700000000,
                            "id": photo[0]["id"],
                            "owner_id": -self.group_id,
                            "access_key": "a7f3c0de",
                            "sizes": [],
                            "text": "",
                        }
                    ]
                },
                {},
            )
        return vk_error(3, "Unknown method passed", params)

    def _send(self, params: dict[str, str]) -> Answer:
        user, random_id = params.get("user_id") or params.get("peer_id"), params.get("random_id")
        if not user or not user.lstrip("-").isdigit():
            return vk_error(
                100, "One of the parameters specified was missing or invalid: user_id", params
            )
        if random_id is None:
            return vk_error(
                100,
                INVALID + "random_id is a required parameter",
                params,
            )
        if not params.get("message") and not params.get("attachment"):
            return vk_error(
                100,
                INVALID + "message is empty or invalid",
                params,
            )
        if len(params.get("message", "")) > 4096:
            return vk_error(914, "Message is too long", params)
        if "keyboard" in params:
            try:
                keyboard = json.loads(params["keyboard"])
                assert isinstance(keyboard, dict) and isinstance(keyboard["buttons"], list)
            except (ValueError, AssertionError, KeyError):
                return vk_error(911, "Keyboard format is invalid", params)
        if int(user) in self.blacklisted:
            return vk_error(900, "Can't send messages for users from blacklist", params)
        if int(user) in self.denied:
            return vk_error(901, "Can't send messages for users without permission", params)
        with self._lock:
            known = self._sent.get((user, random_id))
            if known is not None:
                return 200, {"response": known}, {}
            message_id = next(self._ids)
            self._sent[(user, random_id)] = message_id
            self.messages.append(params)
        return 200, {"response": message_id}, {}

    def _upload(self, req: PeerRequest) -> Answer:
        kind = req.headers.get("content-type", "")
        parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + kind.encode() + b"\r\n\r\n" + req.body
        )
        for part in parsed.iter_parts():
            if part.get_param("name", header="content-disposition") == "photo":
                data = part.get_payload(decode=True)
                if not isinstance(data, bytes) or not data.startswith(b"\xff\xd8"):
                    return 200, {"server": 0, "photo": "[]", "hash": ""}, {}
                with self._lock:
                    self.uploads.append(data)
                photo = json.dumps(
                    [{"id": int(req.path.rsplit("/", 1)[-1]), "markers_restarted": True}]
                )
                return 200, {"server": 851_236, "photo": photo, "hash": secrets.token_hex(16)}, {}
        return 200, {"error": "no photo field"}, {}

    # -- the Callback API, as VK sends it --

    def callback(
        self,
        kind: str,
        obj: dict[str, Any] | None = None,
        *,
        secret: str | None = None,
        group_id: int | None = None,
    ) -> bytes:
        body: dict[str, Any] = {
            "type": kind,
            "event_id": secrets.token_hex(20),
            "v": "5.199",
            "object": obj or {},
            "group_id": self.group_id if group_id is None else group_id,
        }
        if kind != "confirmation":
            body["secret"] = self.secret if secret is None else secret
        return json.dumps(body).encode()

    def message_new(self, user_id: int, text: str, *, ref: str | None = None, **kw: Any) -> bytes:
        message: dict[str, Any] = {
            "date": 1700000000,
            "from_id": user_id,
            "id": next(self._ids),
            "out": 0,
            "peer_id": user_id,
            "text": text,
            "conversation_message_id": 7,
            "fwd_messages": [],
            "important": False,
            "random_id": 0,
            "attachments": [],
            "is_hidden": False,
        }
        if ref is not None:
            message["ref"] = ref
        obj = {
            "message": message,
            "client_info": {
                "button_actions": ["text", "open_link"],
                "keyboard": True,
                "inline_keyboard": True,
                "carousel": True,
                "lang_id": 0,
            },
        }
        return self.callback("message_new", obj, **kw)
