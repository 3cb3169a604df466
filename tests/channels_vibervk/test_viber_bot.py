"""A Viber bot (``viber_bot``) end to end: connected through /api (set_webhook after the
commit), users learned from signed callbacks, /v3 sends reaching the local Viber REST Bot
API peer, statuses and replies coming back through /hooks/viber_bot/<id>."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from omnirelay.channels.base import Outbound, PermanentError, get_adapter
from omnirelay.testing.httppeer import DROP, GARBAGE
from omnirelay.testing.viber import ViberBotPeer
from tests.channels_vibervk.conftest import PHONE, PUBLIC_URL, replies, settle

USER = "01234567890A="


def bot(connect: Any, peer: ViberBotPeer, **settings: Any) -> dict[str, Any]:
    return connect("viber", "viber_bot", peer.settings(**settings), ["OmniBot"])  # type: ignore[no-any-return]


def learn(
    hook: Any, peer: ViberBotPeer, conn: dict[str, Any], drain: Any, user: str = USER
) -> None:
    """The user shares their phone with the bot (a contact message)."""
    body, headers = peer.callback("message", sender_id=user, phone="+" + PHONE)
    r = hook(f"viber_bot/{conn['id']}", body, headers)
    assert r.status_code == 200, r.text
    drain()


def test_connect_sets_the_webhook_and_masks_the_token(connect, viber_peer, client, org):
    conn = bot(connect, viber_peer)
    assert conn["settings"]["auth_token"] == "***"
    assert conn["session"]["state"] == "webhook_set"
    [webhook] = viber_peer.webhooks
    assert webhook["url"] == f"{PUBLIC_URL}/hooks/viber_bot/{conn['id']}"
    assert set(webhook["event_types"]) >= {"delivered", "seen", "failed", "subscribed"}
    shown = client.get(f"/api/connections/{conn['id']}", headers=org.headers()).json()
    assert shown["session"]["state"] == "webhook_set"
    assert shown["settings"]["auth_token"] == "***"


def test_a_refused_set_webhook_is_the_connections_state(connect, viber_peer):
    conn = bot(connect, viber_peer, auth_token="wrong-token")
    assert conn["session"]["state"] == "webhook_failed"
    assert "Viber status 2: invalidAuthToken" in conn["session"]["last_error"]


def message_contact(client: Any, org: Any) -> dict[str, Any]:
    [contact] = client.post("/user/contacts/list", json={}, headers=org.token).json()["data"]
    return contact  # type: ignore[no-any-return]


def test_send_to_a_learned_user_is_delivered_then_read(
    connect, viber_peer, hook, v3, drain, stored, client, org
):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    r = v3(
        "message/sendViber",
        {
            "sender": "OmniBot",
            "phone": PHONE,
            "text": "Your order shipped",
            "action": {"title": "Track", "url": "https://shop.example/track"},
        },
    )
    assert r.status_code == 200, r.text
    mid = r.json()["id"]
    drain()
    [sent] = viber_peer.messages
    assert sent["receiver"] == USER and sent["type"] == "text"
    assert message_contact(client, org)["viberId"] == USER
    assert sent["text"] == "Your order shipped" and sent["tracking_data"] == mid
    assert sent["sender"]["name"] == "Omni Bot"
    assert sent["keyboard"]["Buttons"] == [
        {"ActionType": "open-url", "ActionBody": "https://shop.example/track", "Text": "Track"}
    ]
    message, [attempt] = stored(mid)
    assert message.status == "sent" and attempt.provider == "viber_bot"
    token = attempt.provider_message_id
    assert token is not None and token.isdigit()
    for event, status in (("delivered", "delivered"), ("seen", "read")):
        body, headers = viber_peer.callback(event, message_token=int(token), user_id=USER)
        assert hook(f"viber_bot/{conn['id']}", body, headers).status_code == 200
        drain()
        assert stored(mid)[0].status == status


def test_a_picture_goes_as_a_picture_message(connect, viber_peer, hook, v3, drain):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    v3(
        "message/sendViber",
        {"sender": "OmniBot", "phone": PHONE, "image": "https://i.example/a.png"},
    )
    drain()
    [sent] = viber_peer.messages
    assert sent["type"] == "picture" and sent["media"] == "https://i.example/a.png"


def test_a_failed_callback_ends_the_step_and_the_next_one_delivers(
    connect, viber_peer, hook, v3, drain, stored
):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    r = v3(
        "message/send",
        {
            "route": [
                {"channel": "viber", "sender": "OmniBot", "phone": PHONE, "text": "hi"},
                {"channel": "sms", "sender": "SANDBOX", "phone": PHONE, "text": "hi"},
            ]
        },
    )
    mid = r.json()["id"]
    drain()
    token = stored(mid)[1][0].provider_message_id
    body, headers = viber_peer.callback(
        "failed", message_token=int(token), user_id=USER, desc="Receiver is not subscribed"
    )
    assert hook(f"viber_bot/{conn['id']}", body, headers).status_code == 200
    drain()
    message, attempts = stored(mid)
    assert [(a.channel, a.status, a.code) for a in attempts] == [
        ("viber", "undelivered", 1201),
        ("sms", "delivered", None),
    ]
    assert message.status == "delivered"


def test_an_unknown_user_is_a_clear_error_and_the_next_step_goes(
    connect, viber_peer, v3, drain, stored
):
    bot(connect, viber_peer)
    r = v3(
        "message/send",
        {
            "route": [
                {"channel": "viber", "sender": "OmniBot", "phone": PHONE, "text": "hi"},
                {"channel": "sms", "sender": "SANDBOX", "phone": PHONE, "text": "hi"},
            ]
        },
    )
    drain()
    message, attempts = stored(r.json()["id"])
    assert attempts[0].status == "rejected" and attempts[0].code == 1010
    assert "no Viber user known for phone" in (attempts[0].error or "")
    assert attempts[1].channel == "sms" and message.status == "delivered"
    assert viber_peer.messages == []


def test_api_statuses_map_onto_the_seed_codes(connect, viber_peer, hook, v3, drain, stored):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    viber_peer.not_subscribed.add(USER)
    r = v3("message/sendViber", {"sender": "OmniBot", "phone": PHONE, "text": "x"})
    drain()
    _, [attempt] = stored(r.json()["id"])
    assert (attempt.status, attempt.code) == ("undelivered", 1201)
    assert "receiverNotSubscribed" in (attempt.error or "")
    viber_peer.not_subscribed.clear()
    viber_peer.not_registered.add(USER)
    r = v3("message/sendViber", {"sender": "OmniBot", "phone": PHONE, "text": "x"})
    drain()
    assert stored(r.json()["id"])[1][0].code == 1202


def test_faults_are_retried_and_the_message_goes_once(
    connect, viber_peer, hook, v3, drain, advance, stored
):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    faults = [
        (200, {"status": 12, "status_message": "tooManyRequests"}, {}),
        (500, b"oops", {}),
        DROP,
    ]
    viber_peer.script = lambda req, n: faults[n - 1] if n <= len(faults) else None
    r = v3("message/sendViber", {"sender": "OmniBot", "phone": PHONE, "text": "x"})
    settle(drain, advance)
    message, [attempt] = stored(r.json()["id"])
    assert attempt.status == "sent" and message.status == "sent"
    assert len(viber_peer.messages) == 1
    assert len([q for q in viber_peer.requests if q.path == "/pa/send_message"]) == 4


def test_a_garbage_answer_is_a_clear_error_on_the_attempt(
    connect, viber_peer, hook, v3, drain, advance, stored
):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    viber_peer.script = lambda req, n: GARBAGE
    r = v3("message/sendViber", {"sender": "OmniBot", "phone": PHONE, "text": "x"})
    settle(drain, advance)
    message, [attempt] = stored(r.json()["id"])
    assert attempt.status == "error" and message.status == "error"
    assert "unexpected answer from Viber" in (attempt.error or "")


def test_a_reply_reaches_the_reply_url(
    connect, viber_peer, hook, v3, drain, receiver, deliverer, inbound
):
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    r = v3(
        "message/sendViber",
        {
            "sender": "OmniBot",
            "phone": PHONE,
            "text": "How was it?",
            "reply": receiver.url("/reply"),
        },
    )
    mid = r.json()["id"]
    drain()
    body, headers = viber_peer.callback(
        "message", sender_id=USER, text="Great, thanks", tracking_data=mid
    )
    assert hook(f"viber_bot/{conn['id']}", body, headers).status_code == 200
    drain()
    from tests.channels_vibervk.conftest import wait_for

    [reply] = wait_for(lambda: replies(receiver))
    assert reply["id"] == mid and reply["text"] == "Great, thanks"
    rows = inbound()
    assert rows[-1].channel == "viber" and rows[-1].phone == PHONE and rows[-1].message_id == mid


def test_a_bad_signature_is_refused_and_nothing_is_stored(
    connect, viber_peer, hook, drain, inbound, client, org
):
    conn = bot(connect, viber_peer)
    body, headers = viber_peer.callback("message", sender_id=USER, text="hi")
    forged = {**headers, "X-Viber-Content-Signature": "0" * 64}
    assert hook(f"viber_bot/{conn['id']}", body, forged).status_code == 401
    assert (
        hook(f"viber_bot/{conn['id']}", body, {"Content-Type": "application/json"}).status_code
        == 401
    )
    assert hook(f"viber_bot/{conn['id'] + 1000}", body, headers).status_code == 404
    drain()
    assert inbound() == []
    contacts = client.post("/user/contacts/list", json={}, headers=org.token)
    assert contacts.status_code == 200 and USER not in contacts.text


def test_conversation_started_with_a_phone_context_links_the_user(
    connect, viber_peer, hook, v3, drain
):
    conn = bot(connect, viber_peer)
    body, headers = viber_peer.callback("conversation_started", user_id="U-ctx", context=PHONE)
    assert hook(f"viber_bot/{conn['id']}", body, headers).status_code == 200
    body, headers = viber_peer.callback("webhook")
    assert hook(f"viber_bot/{conn['id']}", body, headers).status_code == 200
    v3("message/sendViber", {"sender": "OmniBot", "phone": PHONE, "text": "x"})
    drain()
    assert [m["receiver"] for m in viber_peer.messages] == ["U-ctx"]


def test_a_new_token_sets_the_webhook_again(connect, viber_peer, client, org):
    conn = bot(connect, viber_peer, auth_token="wrong-token")
    assert conn["session"]["state"] == "webhook_failed"
    r = client.patch(
        f"/api/connections/{conn['id']}",
        json={"settings": {"auth_token": viber_peer.auth_token}},
        headers=org.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["session"]["state"] == "webhook_set" and len(viber_peer.webhooks) == 1


def test_random_drops_and_500s_lose_nothing(connect, viber_peer, hook, v3, drain, advance, stored):
    """The chaos fault of this adapter: a fifth of the calls answer 500, a tenth drop the
    connection before Viber takes the message; every message is sent, once."""
    import random

    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    rng = random.Random(16)

    def chaos(req: Any, n: int) -> Any:
        roll = rng.random()
        return (500, b"", {}) if roll < 0.2 else DROP if roll < 0.3 else None

    viber_peer.script = chaos
    ids = [
        v3("message/sendViber", {"sender": "OmniBot", "phone": PHONE, "text": f"m{i}"}).json()["id"]
        for i in range(12)
    ]
    settle(drain, advance, rounds=8)
    assert [stored(mid)[0].status for mid in ids] == ["sent"] * 12
    assert sorted(m["text"] for m in viber_peer.messages) == sorted(f"m{i}" for i in range(12))
    assert len([q for q in viber_peer.requests if q.path == "/pa/send_message"]) > 12


@pytest.fixture
def media_host() -> Iterator[str]:
    """A site the attachments live on: answers ``HEAD`` with the file's length, as a file
    host does (Viber's video and file messages need the size)."""

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200 if self.path.startswith("/f/") else 404)
            self.send_header("Content-Length", "48213" if self.path.startswith("/f/") else "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_attachments_go_as_a_carousel_from_user_notifications(
    connect, viber_peer, hook, drain, client, org, stored
):
    """/user/notifications/send with pictures and a document: a ``rich_media`` carousel
    (one card each, the text on the first), accepted by the peer's checks, then a
    status as any message's."""
    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    contact = message_contact(client, org)
    body = {
        "contactId": contact["id"],
        "message": {
            "text": "New arrivals",
            "attachments": [
                "https://i.example/a.png",
                {"url": "https://i.example/b.jpg", "type": "image"},
                {"url": "https://d.example/price%20list.pdf", "type": "file"},
            ],
        },
        "channels": [{"name": "viber-bots"}],
    }
    r = client.post("/user/notifications/send", json=body, headers=org.token)
    assert r.status_code == 200, r.text
    drain()
    [sent] = viber_peer.messages
    assert sent["type"] == "rich_media" and sent["min_api_version"] >= 2
    assert sent["alt_text"] == "New arrivals" and "text" not in sent
    buttons = sent["rich_media"]["Buttons"]
    assert len(buttons) == 6  # three cards of two buttons
    assert [b.get("Image") for b in buttons[0::2]] == [
        "https://i.example/a.png",
        "https://i.example/b.jpg",
        None,
    ]
    assert buttons[1]["Text"] == "New arrivals"
    assert buttons[4]["Text"] == "price list.pdf"
    assert {b["ActionBody"] for b in buttons[4:]} == {"https://d.example/price%20list.pdf"}
    [attempt] = stored(r.json()["id"])[1]
    assert attempt.status == "sent" and attempt.provider_message_id


def test_a_lone_file_or_video_goes_as_its_own_type_with_its_size(
    viber_peer: ViberBotPeer, media_host: str
) -> None:
    """Viber's ``file`` and ``video`` messages against the peer: the size asked of the
    file's host (HEAD), the file name from the attachment or the URL; a host that does
    not tell the size is a clear refusal, before Viber is asked."""
    adapter = get_adapter("viber_bot")
    assert adapter is not None

    def send(attachment: dict[str, Any], text: str = "") -> Any:
        return adapter.send(
            Outbound(
                message_id="m-1",
                channel="viber",
                phone=PHONE,
                sender="OmniBot",
                text=text,
                settings=viber_peer.settings(),
                extra={"recipient": USER, "attachments": [attachment]},
            )
        )

    assert send({"url": f"{media_host}/f/report.pdf", "type": "file"}).provider_message_id
    assert send({"url": f"{media_host}/f/clip.mp4", "type": "video"}).provider_message_id
    assert send({"url": f"{media_host}/f/a.ogg", "type": "audio", "name": "Voice note.ogg"})
    file, video, audio = viber_peer.messages
    assert (file["type"], file["size"], file["file_name"]) == ("file", 48213, "report.pdf")
    assert (video["type"], video["size"], video["media"]) == (
        "video",
        48213,
        f"{media_host}/f/clip.mp4",
    )
    assert (audio["type"], audio["file_name"]) == ("file", "Voice note.ogg")
    # With a text, it is a one-card carousel (Viber's file and video carry no text).
    send({"url": f"{media_host}/f/clip.mp4", "type": "video"}, text="Watch this")
    assert viber_peer.messages[-1]["type"] == "rich_media"
    with pytest.raises(PermanentError, match=r"size of .* is unknown"):
        send({"url": f"{media_host}/missing.pdf", "type": "file"})
    assert len(viber_peer.messages) == 4


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20


def test_a_picture_and_a_file_are_downloaded_into_media_storage(
    connect, viber_peer, hook, v3, drain, receiver, deliverer, inbound, client, db, settings
):
    from omnirelay.drain import Drain
    from omnirelay.media.fetch import FetchStep
    from omnirelay.media.storage import MAX_SIZE
    from tests.channels_vibervk.conftest import wait_for

    conn = bot(connect, viber_peer)
    learn(hook, viber_peer, conn, drain)
    r = v3(
        "message/sendViber",
        {"sender": "OmniBot", "phone": PHONE, "text": "A photo?", "reply": receiver.url("/reply")},
    )
    mid = r.json()["id"]
    drain()
    picture = viber_peer.media(JPEG, "img.jpg", "image/jpeg")
    pdf = b"%PDF-1.4\n" + b"x" * 500
    for fields in (
        {"media": picture, "kind": "picture", "text": "Here", "tracking_data": mid},
        {
            "media": viber_peer.media(pdf, "r.pdf", "application/pdf"),
            "kind": "file",
            "file_name": "receipt.pdf",
            "size": len(pdf),
        },
        # Aimed outside the allowed networks: the SSRF guard refuses it, the text is kept.
        {"media": "http://10.1.2.3/x.jpg", "kind": "picture", "text": "Elsewhere"},
        # Stated over 10 MB: never downloaded.
        {
            "media": viber_peer.media(pdf, "big.pdf", "application/pdf"),
            "kind": "file",
            "file_name": "big.pdf",
            "size": MAX_SIZE + 1,
            "text": "Big",
        },
    ):
        body, headers = viber_peer.callback("message", sender_id=USER, **fields)
        assert hook(f"viber_bot/{conn['id']}", body, headers).status_code == 200
    drain()
    rows = inbound()[-4:]
    assert [a["pending"] for row in rows for a in row.attachments or []] == [True] * 4
    assert receiver.received("/reply") == []  # held until the file is in
    assert Drain(db, FetchStep(settings)).run_until_idle() == 4
    photo_row, file_row, refused_row, big_row = inbound()[-4:]
    assert big_row.attachments is not None and big_row.attachments[0]["error"] == "file_too_large"
    [photo], [document], [refused] = (
        photo_row.attachments,
        file_row.attachments,
        refused_row.attachments,
    )
    assert (photo_row.text, photo["name"], photo["contentType"]) == (
        "Here",
        "img.jpg",
        "image/jpeg",
    )
    assert (document["name"], document["contentType"], document["size"]) == (
        "receipt.pdf",
        "application/pdf",
        len(pdf),
    )
    assert client.get(photo["mediaUrl"]).content == JPEG
    assert client.get(document["mediaUrl"]).content == pdf
    assert refused_row.text == "Elsewhere" and refused["error"] == "download_failed"
    assert "mediaUrl" not in refused and len(viber_peer.downloads) == 2
    # Each is a reply to the message (the latest sent to the user); the reply URL gets
    # the final links.
    got = wait_for(lambda: len(replies(receiver)) >= 4 and replies(receiver))
    by_text = {g["text"]: g for g in got}
    assert {g["id"] for g in got} == {mid}
    assert by_text["Here"]["attachments"] == [photo]
    assert by_text[""]["attachments"] == [document]
