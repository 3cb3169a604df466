"""Photos and documents users send a bot: the message is stored at once (its caption
kept), the files downloaded afterwards by the inbound.attachments drain (getFile, then
the file, from the local Bot API peer), stored in the media storage, linked from the
message and the reply URL's body, which waits for them; a file Telegram says is over
10 MB is never downloaded, a file it cannot give is recorded as failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.media.fetch import FetchStep
from omnirelay.media.models import InboundFetch, MediaSlot
from omnirelay.media.storage import MAX_SIZE
from omnirelay.messaging.models import InboundMessage
from omnirelay.telegram.runner import TelegramRunner
from omnirelay.testing.receiver import Receiver
from tests.notify.conftest import wait_for
from tests.telegram.conftest import CHAT, PHONE, Bot

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
PDF = b"%PDF-1.4\n" + b"0123456789" * 300


def _rows(db: Database) -> list[InboundMessage]:
    with db.read() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all())


def _fetches(db: Database) -> int:
    with db.read() as session:
        return len(session.scalars(select(InboundFetch.id)).all())


def test_a_photo_and_a_document_are_downloaded_stored_and_reach_the_reply_url(
    client: TestClient,
    v3: Callable[..., Any],
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
    db: Database,
    settings: Settings,
) -> None:
    r = v3(
        "message/sendTelegram",
        {"phone": PHONE, "text": "Send the receipt?", "reply": receiver.url("/reply")},
    )
    mid = r.json()["id"]
    drain()
    bot.peer.user_photo(CHAT, JPEG, caption="Here it is")
    bot.peer.user_document(CHAT, PDF, "receipt.pdf", "application/pdf")
    assert runner.run_once() == 2
    drain()
    # Stored before any download: the caption is there, the files pending, no reply yet.
    photo_row, document_row = _rows(db)[-2:]
    assert photo_row.text == "Here it is"
    assert photo_row.attachments == [
        {"name": "photo.jpg", "contentType": "image/jpeg", "size": len(JPEG), "pending": True}
    ]
    assert bot.peer.downloads == []
    assert receiver.received("/reply") == []
    assert Drain(db, FetchStep(settings)).run_until_idle() == 2
    assert _fetches(db) == 0
    assert len(bot.peer.downloads) == 2
    got = wait_for(lambda: len(receiver.received("/reply")) >= 2 and receiver.received("/reply"))
    bodies = sorted((json.loads(g.body) for g in got), key=lambda b: b["text"])
    assert [(b["id"], b["text"]) for b in bodies] == [(mid, ""), (mid, "Here it is")]
    [document], [photo] = bodies[0]["attachments"], bodies[1]["attachments"]
    assert (photo["name"], photo["contentType"], photo["size"]) == (
        "photo.jpg",
        "image/jpeg",
        len(JPEG),
    )
    assert (document["name"], document["contentType"]) == ("receipt.pdf", "application/pdf")
    assert client.get(photo["mediaUrl"]).content == JPEG  # the full size, not the thumbnail
    assert client.get(document["mediaUrl"]).content == PDF
    photo_row, document_row = _rows(db)[-2:]
    assert (photo_row.attachments, document_row.attachments) == ([photo], [document])
    with db.read() as session:
        assert len(session.scalars(select(MediaSlot)).all()) == 2


def test_a_file_over_10_mb_is_not_downloaded_and_a_missing_one_fails_the_text_kept(
    linked: int,
    bot: Bot,
    runner: TelegramRunner,
    drain: Callable[[], int],
    db: Database,
    settings: Settings,
) -> None:
    bot.peer.user_document(CHAT, PDF, "big.pdf", "application/pdf", "Big", MAX_SIZE + 1)
    update = bot.peer.user_document(CHAT, PDF, "gone.pdf", "application/pdf", "Gone")
    bot.peer.files.pop(update["message"]["document"]["file_id"])  # Telegram lost it
    runner.run_once()
    drain()
    Drain(db, FetchStep(settings)).run_until_idle()
    big, gone = _rows(db)[-2:]
    assert big.text == "Big" and gone.text == "Gone"
    assert big.attachments is not None and gone.attachments is not None
    [big_file], [gone_file] = big.attachments, gone.attachments
    assert big_file["error"] == "file_too_large" and "mediaUrl" not in big_file
    assert (gone_file["name"], gone_file["error"]) == ("gone.pdf", "download_failed")
    assert bot.peer.downloads == []  # the big one was refused on getFile's stated size
    assert _fetches(db) == 0
    with db.read() as session:
        assert session.scalars(select(MediaSlot)).all() == []
