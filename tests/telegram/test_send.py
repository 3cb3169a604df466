"""Sends through a ``telegram`` connection, end to end from /v3 against the local Bot
API peer: the chat found from the phone, keyboards and photos, the error table, the
faults (429 retry_after, 500, a dropped connection, garbage)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from omnirelay.testing.telegram import tg_error
from tests.conftest import Org
from tests.telegram.conftest import CHAT, PHONE, Bot


def _send(v3: Callable[..., Any], **body: Any) -> str:
    r = v3("message/sendTelegram", {"phone": PHONE, "text": "Your code is 1234", **body})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted", r.json()
    return str(r.json()["id"])


def test_connection_settings_are_checked_and_secrets_masked(
    client: TestClient, org: Org, peer: Any
) -> None:
    body = {
        "channel": "telegram",
        "provider": "telegram",
        "name": "Bot",
        "settings": peer.settings(webhook_url="https://relay.example.com", webhook_secret="s3cr3t"),
    }
    r = client.post("/api/connections", json=body, headers=org.headers())
    assert r.status_code == 201, r.text
    shown = r.json()["settings"]
    assert shown["bot_token"] == "***" and shown["webhook_secret"] == "***"
    assert shown["base_url"] == peer.base_url
    for bad, needle in (
        ({"bot_token": "nope"}, "bot_token"),
        (peer.settings(webhook_url="https://relay.example.com"), "webhook_secret"),
        (peer.settings(webhook_url="http://relay.example.com", webhook_secret="x"), "https"),
        (peer.settings(rate_limit=-1), "rate_limit"),
        (peer.settings(colour="blue"), "colour"),
        (peer.settings(base_url="http://10.0.0.1:8081"), "base_url"),
    ):
        r = client.post("/api/connections", json={**body, "settings": bad}, headers=org.headers())
        assert r.status_code == 400, (bad, r.text)
        assert needle in r.text, r.text


def test_send_telegram_goes_to_the_chat_of_the_phone(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    drain: Callable[[], int],
    message: Callable[[str], Any],
    attempts: Callable[[str], list[Any]],
) -> None:
    mid = _send(v3)
    drain()
    assert bot.peer.sent[-1] == ("sendMessage", {"chat_id": str(CHAT), "text": "Your code is 1234"})
    assert message(mid).status == "delivered"
    (attempt,) = attempts(mid)
    assert attempt.provider == "telegram"
    # chat_id:message_id; the /start message was the chat's first
    assert attempt.provider_message_id == f"{CHAT}:2"


def test_action_is_an_inline_keyboard_and_image_a_photo(
    v3: Callable[..., Any], linked: int, bot: Bot, drain: Callable[[], int]
) -> None:
    r = v3(
        "message/send",
        {
            "route": [
                {
                    "channel": "telegram",
                    "phone": PHONE,
                    "text": "See the offer",
                    "image": "https://cdn.example.com/offer.png",
                    "action": {"title": "Open", "url": "https://shop.example.com/offer"},
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    drain()
    method, body = bot.peer.sent[-1]
    assert method == "sendPhoto"
    assert body["photo"] == "https://cdn.example.com/offer.png"
    assert body["caption"] == "See the offer"
    assert body["reply_markup"] == {
        "inline_keyboard": [[{"text": "Open", "url": "https://shop.example.com/offer"}]]
    }


def test_no_known_chat_fails_the_step_and_the_route_goes_on(
    v3: Callable[..., Any],
    bot: Bot,
    drain: Callable[[], int],
    message: Callable[[str], Any],
    attempts: Callable[[str], list[Any]],
) -> None:
    r = v3(
        "message/send",
        {
            "route": [
                {"channel": "telegram", "phone": PHONE, "text": "hi"},
                {"channel": "sms", "phone": PHONE, "text": "hi", "sender": "SANDBOX"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    mid = r.json()["id"]
    drain()
    first, second = attempts(mid)
    assert (first.channel, first.status, first.code) == ("telegram", "undelivered", 1010)
    assert "no Telegram chat known for +79161234567" in (first.error or "")
    assert second.channel == "sms"
    assert message(mid).status == "delivered"
    assert bot.peer.sent == []  # nothing reached Telegram


def test_blocked_by_the_user_and_chat_not_found_are_permanent(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    drain: Callable[[], int],
    message: Callable[[str], Any],
) -> None:
    bot.peer.block(CHAT)
    blocked = _send(v3)
    drain()
    row = message(blocked)
    assert (row.status, row.code) == ("undelivered", 1058)
    assert "bot was blocked by the user" in (row.error or "")
    bot.peer.blocked.clear()
    bot.peer.chats.clear()  # Telegram no longer knows the chat
    gone = _send(v3)
    drain()
    row = message(gone)
    assert (row.status, row.code) == ("undelivered", 1010)
    assert "chat not found" in (row.error or "")


def test_429_waits_the_retry_after_telegram_gives(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    drain: Callable[[], int],
    advance: Callable[[float], None],
    message: Callable[[str], Any],
) -> None:
    bot.peer.script = lambda method, body, n: (
        tg_error(429, "Too Many Requests: retry after 30", retry_after=30) if n == 1 else None
    )
    mid = _send(v3)
    drain()
    row = message(mid)
    assert row.status == "accepted" and row.tries == 1
    assert row.due_at is not None and row.due_at - row.updated_at >= timedelta(seconds=29)
    advance(20)
    drain()
    assert message(mid).status == "accepted"  # not before the 30 s
    advance(11)
    drain()
    assert message(mid).status == "delivered"
    assert len(bot.peer.sent) == 1


def test_500_and_a_dropped_connection_are_retried(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    drain: Callable[[], int],
    advance: Callable[[float], None],
    message: Callable[[str], Any],
) -> None:
    bot.peer.script = lambda method, body, n: (
        tg_error(500, "Internal Server Error") if n == 1 else None
    )
    mid = _send(v3)
    drain()
    assert message(mid).tries == 1
    bot.peer.drop = 1  # the next try's connection closes without an answer
    advance(10)
    drain()
    assert message(mid).tries == 2
    advance(10)
    drain()
    assert message(mid).status == "delivered"


def test_a_garbage_answer_is_a_clear_error_on_the_attempt(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    drain: Callable[[], int],
    advance: Callable[[float], None],
    message: Callable[[str], Any],
    attempts: Callable[[str], list[Any]],
) -> None:
    bot.peer.script = lambda method, body, n: (200, b"<html>captive portal</html>", {})
    mid = _send(v3)
    for _ in range(6):
        drain()
        advance(400)
    drain()
    assert message(mid).status == "error"
    (attempt,) = attempts(mid)
    assert attempt.status == "error"
    assert "unexpected answer from Telegram: HTTP 200" in (attempt.error or "")
    assert "captive portal" in (attempt.error or "")


def test_a_revoked_token_is_an_error_of_the_connection(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    drain: Callable[[], int],
    message: Callable[[str], Any],
) -> None:
    bot.peer.token = "123456789:revoked"
    mid = _send(v3)
    drain()
    row = message(mid)
    assert (row.status, row.code) == ("error", 1003)
    assert "Unauthorized" in (row.error or "")
