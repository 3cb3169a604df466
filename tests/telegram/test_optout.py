"""Opt-out (issue 16 item 7): an inbound STOP / UNSUBSCRIBE / СТОП on any channel puts
the sender's number on the organization's block list (the list /v3's 1019 reads);
START lifts what an opt-out put there; the keywords are the organization's, through
/api/blocklist/optout. Telegram inbound here, SMPP inbound in test_optout_smpp.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirelay.channels.base import ProviderEvent
from omnirelay.db import Database
from omnirelay.messaging import pipeline
from omnirelay.telegram.runner import TelegramRunner
from tests.conftest import Org
from tests.telegram.conftest import CHAT, PHONE, Bot


def _blocked(client: TestClient, org: Org) -> list[dict[str, Any]]:
    r = client.get("/api/blocklist/phones", headers=org.headers())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _say(bot: Bot, runner: TelegramRunner, drain: Callable[[], int], text: str) -> None:
    bot.peer.user_message(CHAT, text)
    assert runner.run_once() == 1
    drain()


def _send(v3: Callable[..., Any]) -> Any:
    return v3("message/sendTelegram", {"phone": PHONE, "text": "Sale today"})


def test_the_keywords_have_defaults_and_are_the_organizations(client: TestClient, org: Org) -> None:
    r = client.get("/api/blocklist/optout", headers=org.headers())
    assert r.json() == {
        "enabled": True,
        "stop_words": ["STOP", "UNSUBSCRIBE", "СТОП"],
        "start_words": ["START"],
    }
    r = client.put(
        "/api/blocklist/optout",
        json={"stop_words": ["HALT", "halt", "Отписка"]},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["stop_words"] == ["HALT", "Отписка"]  # the same word once
    assert r.json()["start_words"] == ["START"]
    r = client.put("/api/blocklist/optout", json={"start_words": ["halt"]}, headers=org.headers())
    assert r.status_code == 400 and "both a stop and a start" in r.text
    r = client.put("/api/blocklist/optout", json={"stop_words": [" "]}, headers=org.headers())
    assert r.status_code == 400
    assert client.get("/api/blocklist/optout", headers=org.headers()).json()["stop_words"] == [
        "HALT",
        "Отписка",
    ]


@pytest.mark.parametrize("word", ["STOP", "unsubscribe", "СТОП", "Stop!", "/stop"])
def test_stop_in_telegram_blocks_the_number_and_start_lifts_it(
    word: str,
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
) -> None:
    _say(bot, runner, drain, word)
    (entry,) = _blocked(client, org)
    assert (entry["phone"], entry["via"]) == (PHONE, "telegram")
    r = _send(v3)
    assert r.status_code == 400 and r.json()["code"] == 1019, r.text
    r = v3("message/sendSMS", {"phone": PHONE, "text": "x", "sender": "SANDBOX"})
    assert r.json()["code"] == 1019  # the number, whatever the channel
    _say(bot, runner, drain, "/start")  # Telegram's Start button sends /start
    assert _blocked(client, org) == []
    assert _send(v3).json()["status"] == "accepted"


def test_a_stop_inside_a_sentence_is_only_a_message(
    client: TestClient,
    org: Org,
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
) -> None:
    _say(bot, runner, drain, "please don't stop sending")
    assert _blocked(client, org) == []


def test_start_does_not_lift_an_administrators_block(
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
) -> None:
    r = client.post(
        "/api/blocklist/phones", json={"phones": ["+" + PHONE], "reason": "fraud"},
        headers=org.headers(),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    _say(bot, runner, drain, "START")
    (entry,) = _blocked(client, org)
    assert (entry["reason"], entry["via"]) == ("fraud", None)
    assert _send(v3).json()["code"] == 1019


def test_custom_keywords_and_turning_opt_out_off(
    client: TestClient,
    org: Org,
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
) -> None:
    r = client.put(
        "/api/blocklist/optout",
        json={"stop_words": ["HALT"], "start_words": ["RESUME"]},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    _say(bot, runner, drain, "STOP")
    assert _blocked(client, org) == []  # no longer a keyword
    _say(bot, runner, drain, "halt")
    assert [e["via"] for e in _blocked(client, org)] == ["telegram"]
    _say(bot, runner, drain, "Resume")
    assert _blocked(client, org) == []
    client.put("/api/blocklist/optout", json={"enabled": False}, headers=org.headers())
    _say(bot, runner, drain, "HALT")
    assert _blocked(client, org) == []


def test_a_reply_reported_as_a_provider_event_opts_out_too(
    client: TestClient,
    org: Org,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    db: Database,
    attempts: Callable[[str], list[Any]],
) -> None:
    """Providers that report replies with their statuses (pipeline.apply_event: the
    sandbox, gateway-style callbacks) go through the same keywords."""
    r = v3("message/sendSMS", {"phone": PHONE, "text": "Sale", "sender": "SANDBOX"})
    mid = r.json()["id"]
    drain()
    (attempt,) = attempts(mid)
    assert attempt.provider_message_id is not None
    with db.transaction() as session:
        pipeline.enqueue_event(
            session,
            org.id,
            attempt.connection_id,
            attempt.provider_message_id,
            ProviderEvent("inbound", text="UNSUBSCRIBE"),
        )
    drain()
    (entry,) = _blocked(client, org)
    assert (entry["phone"], entry["via"]) == (PHONE, "sms")
