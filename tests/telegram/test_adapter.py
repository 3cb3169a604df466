"""The pure parts of the Telegram adapter: the error table, keyboards, request bodies,
updates and the signed /start payloads (no database, no network)."""

from __future__ import annotations

from typing import Any

import pytest

from omnirelay.channels.base import Outbound, PermanentError, RetriableError
from omnirelay.channels.common import Pacer
from omnirelay.channels.telegram import MAX_WAIT, build_request, error_for
from omnirelay.channels.telegram_updates import parse_update, read_start, start_payload

TOKEN = "123456789:AAH-test"


def _answer(code: int, description: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if params:
        body["parameters"] = params
    return body


@pytest.mark.parametrize(
    ("status", "description", "expected"),
    [
        (400, "Bad Request: chat not found", ("undelivered", 1010)),
        (400, "Bad Request: message is too long", ("rejected", 1012)),
        (400, "Bad Request: wrong HTTP URL specified", ("rejected", 1036)),
        (400, "Bad Request: BUTTON_URL_INVALID", ("rejected", 1037)),
        (400, "Bad Request: something new", ("rejected", 1021)),
        (403, "Forbidden: bot was blocked by the user", ("undelivered", 1058)),
        (403, "Forbidden: user is deactivated", ("undelivered", 1058)),
        (401, "Unauthorized", ("error", 1003)),
        (404, "Not Found", ("error", 1003)),
    ],
)
def test_permanent_errors_are_mapped(
    status: int, description: str, expected: tuple[str, int]
) -> None:
    error = error_for(status, _answer(status, description))
    assert isinstance(error, PermanentError)
    assert (error.status, error.code) == expected
    assert description in str(error)


def test_retriable_errors_keep_retry_after() -> None:
    error = error_for(429, _answer(429, "Too Many Requests: retry after 7", retry_after=7))
    assert isinstance(error, RetriableError) and error.delay == 7
    for status, payload in ((502, _answer(502, "Bad Gateway")), (400, None), (500, "x")):
        error = error_for(status, payload)
        assert isinstance(error, RetriableError) and error.delay is None, (status, payload)


def _out(**kw: Any) -> Outbound:
    return Outbound(message_id="m", channel="telegram", phone="79161234567", sender=None, **kw)


def test_seed_004_buttons_and_action_become_the_inline_keyboard() -> None:
    method, body = build_request(
        _out(
            text="Pick one",
            action={"title": "Site", "url": "https://example.com"},
            extra={"buttons": [{"type": None, "text": "Yes", "link": None},
                               {"type": "url", "text": "Docs", "link": "https://d.example"}]},
        ),
        "42",
    )  # fmt: skip
    assert method == "sendMessage"
    assert body["reply_markup"]["inline_keyboard"] == [
        [{"text": "Site", "url": "https://example.com"}],
        [{"text": "Yes", "callback_data": "Yes"}],
        [{"text": "Docs", "url": "https://d.example"}],
    ]
    method, body = build_request(_out(text="file", extra={"url": "https://x.example/a.pdf"}), "42")
    assert (method, body["document"], body["caption"]) == (
        "sendDocument",
        "https://x.example/a.pdf",
        "file",
    )
    with pytest.raises(PermanentError) as too_long:
        build_request(_out(text="x" * 4097), "42")
    assert too_long.value.code == 1012


def test_start_payloads_are_signed_with_the_bot_token() -> None:
    payload = start_payload(TOKEN, phone="79161234567")
    assert len(payload) <= 64 and read_start(TOKEN, payload).phone == "79161234567"  # type: ignore[union-attr]
    assert read_start("999:other", payload) is None
    assert read_start(TOKEN, payload.replace("7916", "7917")) is None
    contact = start_payload(TOKEN, contact_id="0123456789abcdef01234567")
    assert read_start(TOKEN, contact).contact_id == "0123456789abcdef01234567"  # type: ignore[union-attr]
    assert read_start(TOKEN, "79161234567") is None


def test_updates_that_are_not_messages_are_skipped() -> None:
    assert parse_update({"update_id": 1, "edited_message": {}}) is None
    assert parse_update({"update_id": "1", "message": {}}) is None
    assert parse_update([1, 2]) is None
    got = parse_update(
        {"update_id": 5, "message": {"message_id": 3, "chat": {"id": 7, "type": "private"},
                                     "from": {"id": 7}, "caption": "photo caption"}}
    )  # fmt: skip
    assert got is not None and (got.chat_id, got.text, got.private) == ("7", "photo caption", True)


def test_the_rate_limit_retries_a_send_whose_slot_is_too_far() -> None:
    limits = Pacer()  # as the adapter holds Telegram's limit (most: MAX_WAIT)
    limits.wait("bot", 0.4, most=MAX_WAIT)  # the first slot is now: no wait
    with pytest.raises(RetriableError) as later:
        limits.wait("bot", 0.4, most=MAX_WAIT)  # the next is 2.5 s away: retried, not slept
    assert later.value.delay is not None and later.value.delay > 2.0
    limits.wait("other-bot", 0.4, most=MAX_WAIT)  # each bot has its own schedule
    with pytest.raises(RetriableError):
        limits.wait("other-bot", 0.4, most=MAX_WAIT)
    limits.wait("bot", 0)  # no limit
