"""What a bot receives, by webhook (/hooks/telegram/<id>, the secret token checked) and
by long polling (getUpdates, the offset persisted): stored through the inbound path,
reaching reply URLs, the contact's telegramId learned (and its phone from a signed
/start link or a shared contact)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.channels.telegram_updates import start_payload
from omnirelay.contacts.models import Contact
from omnirelay.db import Database
from omnirelay.queue.models import Job
from omnirelay.telegram.runner import TelegramRunner
from omnirelay.testing.receiver import Receiver
from tests.conftest import Org
from tests.notify.conftest import wait_for
from tests.telegram.conftest import CHAT, PHONE, Bot

SECRET = "s3cr3t-token_1"


def _contacts(db: Database) -> list[tuple[str | None, str | None]]:
    with db.read() as session:
        rows = session.scalars(select(Contact).order_by(Contact.created_at, Contact.id)).all()
        return [(c.phone, c.telegram_id) for c in rows]


def _jobs(db: Database, kind: str) -> int:
    with db.read() as session:
        return len(session.scalars(select(Job.id).where(Job.kind == kind)).all())


def _hook(client: TestClient, bot: Bot, update: dict[str, Any], secret: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return client.post(f"/hooks/telegram/{bot.id}", content=json.dumps(update), headers=headers)


def test_connect_sets_the_webhook_once_and_again_when_settings_change(
    client: TestClient, org: Org, make_bot: Callable[..., Bot], runner: TelegramRunner
) -> None:
    bot = make_bot(webhook_url="https://relay.example.com", webhook_secret=SECRET)
    runner.run_once()
    assert bot.peer.webhook == {
        "url": f"https://relay.example.com/hooks/telegram/{bot.id}",
        "secret_token": SECRET,
    }
    runner.run_once()
    assert bot.peer.methods.count("setWebhook") == 1  # nothing changed: not again
    r = client.patch(
        f"/api/connections/{bot.id}",
        json={"settings": {"webhook_secret": "other-secret", "bot_token": "***"}},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    runner.run_once()
    assert bot.peer.webhook is not None and bot.peer.webhook["secret_token"] == "other-secret"
    # Without a public URL the webhook goes and the bot is polled.
    r = client.patch(
        f"/api/connections/{bot.id}", json={"settings": {"webhook_url": ""}}, headers=org.headers()
    )
    assert r.status_code == 200, r.text
    runner.run_once()
    assert bot.peer.webhook is None
    assert bot.peer.methods[-2:] == ["deleteWebhook", "getUpdates"]


def test_a_webhook_update_is_stored_and_teaches_the_contact(
    client: TestClient,
    make_bot: Callable[..., Bot],
    runner: TelegramRunner,
    drain: Callable[[], int],
    inbound: Callable[[], list[Any]],
    db: Database,
) -> None:
    bot = make_bot(webhook_url="https://relay.example.com", webhook_secret=SECRET)
    runner.run_once()
    r = _hook(client, bot, bot.peer.make_update(CHAT, "Hello bot"), SECRET)
    assert (r.status_code, r.json()) == (200, {"ok": True})
    drain()
    (row,) = inbound()
    assert (row.channel, row.text, row.connection_id) == ("telegram", "Hello bot", bot.id)
    assert row.to == "omnirelay_test_bot"
    assert _contacts(db) == [(None, str(CHAT))]


def test_wrong_or_missing_secret_token_is_refused_and_nothing_stored(
    client: TestClient,
    make_bot: Callable[..., Bot],
    drain: Callable[[], int],
    inbound: Callable[[], list[Any]],
    db: Database,
) -> None:
    bot = make_bot(webhook_url="https://relay.example.com", webhook_secret=SECRET)
    update = bot.peer.make_update(CHAT, "Hello bot")
    for secret in ("wrong", None, SECRET + "x", ""):
        r = _hook(client, bot, update, secret)
        assert r.status_code == 401, r.text
        assert r.json() == {"ok": False, "error": "invalid secret token"}
    r = client.post(
        f"/hooks/telegram/{bot.id + 1000}",
        content=json.dumps(update),
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert r.status_code == 404
    r = client.post(
        f"/hooks/telegram/{bot.id}",
        content=b"{not json",
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert r.status_code == 400
    assert _jobs(db, "telegram.update") == 0
    drain()
    assert inbound() == [] and _contacts(db) == []


def test_a_bot_without_a_webhook_secret_refuses_every_webhook(
    client: TestClient, bot: Bot, db: Database
) -> None:
    r = _hook(client, bot, bot.peer.make_update(CHAT, "hi"), "anything")
    assert r.status_code == 401
    assert _jobs(db, "telegram.update") == 0


def test_polling_stores_each_update_once_across_restarts(
    bot: Bot,
    db: Database,
    drain: Callable[[], int],
    inbound: Callable[[], list[Any]],
) -> None:
    first = TelegramRunner(db, owner="process-1")
    bot.peer.user_message(CHAT, "one")
    bot.peer.user_message(CHAT, "two")
    assert first.run_once() == 2
    assert first.run_once() == 0  # the stored offset confirmed them
    first.stop()  # releases the bot
    restarted = TelegramRunner(db, owner="process-2")
    assert [b.connection_id for b in restarted.bots()] == [bot.id]
    assert restarted.run_once() == 0  # neither lost nor repeated
    bot.peer.user_message(CHAT, "three")
    assert restarted.run_once() == 1
    drain()
    assert [r.text for r in inbound()] == ["one", "two", "three"]


def test_a_poll_whose_lease_was_lost_stores_nothing_and_the_holder_gets_it(
    bot: Bot, db: Database, drain: Callable[[], int], inbound: Callable[[], list[Any]]
) -> None:
    one = TelegramRunner(db, owner="process-1", lease=60)
    (held,) = one.bots()
    other = TelegramRunner(db, owner="process-2")
    assert other.bots() == []  # process-1 holds the bot
    bot.peer.user_message(CHAT, "only once")
    one.connect(held)
    with db.transaction() as session:  # process-1's lease lapsed; process-2 took it
        from omnirelay.telegram.models import TelegramState

        state = session.get(TelegramState, bot.id)
        assert state is not None
        state.owner = "process-2"
    assert one.poll(held, 0) == 0
    assert other.run_once() == 1
    drain()
    assert [r.text for r in inbound()] == ["only once"]


def test_a_reply_in_telegram_reaches_the_reply_url(
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
) -> None:
    r = v3(
        "message/sendTelegram",
        {"phone": PHONE, "text": "Coming tomorrow?", "reply": receiver.url("/reply")},
    )
    mid = r.json()["id"]
    drain()
    bot.peer.user_message(CHAT, "Yes, at 10")
    assert runner.run_once() == 1
    drain()
    (got,) = wait_for(lambda: receiver.received("/reply"))
    body = json.loads(got.body)
    assert (body["id"], body["text"]) == (mid, "Yes, at 10")


def test_start_links_tie_the_chat_to_the_phone_only_when_signed(
    v3: Callable[..., Any],
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
    db: Database,
    message: Callable[[str], Any],
) -> None:
    bot.peer.user_message(CHAT, f"/start p{PHONE}-0123456789abcdef0123")  # forged
    runner.run_once()
    drain()
    assert _contacts(db) == [(None, str(CHAT))]
    r = v3("message/sendTelegram", {"phone": PHONE, "text": "x"})
    drain()
    assert message(r.json()["id"]).code == 1010  # no chat for the phone
    bot.peer.user_message(CHAT, "/start " + start_payload(bot.peer.token, phone=PHONE))
    runner.run_once()
    drain()
    assert _contacts(db) == [("+" + PHONE, str(CHAT))]
    r = v3("message/sendTelegram", {"phone": PHONE, "text": "x"})
    drain()
    assert message(r.json()["id"]).status == "delivered"


def test_a_shared_own_contact_ties_the_phone_and_another_user_does_not(
    bot: Bot, runner: TelegramRunner, drain: Callable[[], int], db: Database
) -> None:
    someone_else = {"phone_number": "+79990000000", "first_name": "X", "user_id": 42}
    bot.peer.user_message(CHAT, contact=someone_else)
    own = {"phone_number": "+" + PHONE, "first_name": "Test", "user_id": CHAT}
    bot.peer.user_message(CHAT + 1, contact={**own, "user_id": CHAT + 1})
    runner.run_once()
    drain()
    assert sorted(_contacts(db), key=str) == sorted(
        [(None, str(CHAT)), ("+" + PHONE, str(CHAT + 1))], key=str
    )


def test_the_runner_polls_in_the_background(
    bot: Bot, db: Database, drain: Callable[[], int], inbound: Callable[[], list[Any]]
) -> None:
    runner = TelegramRunner(db, owner="bg", wait=0.5, refresh=0.1)
    runner.start()
    try:
        bot.peer.user_message(CHAT, "while running")

        def stored() -> bool:
            drain()
            return any(r.text == "while running" for r in inbound())

        wait_for(stored)
    finally:
        runner.stop()
    assert TelegramRunner(db, owner="next").bots() != []  # stop() let the bot go
