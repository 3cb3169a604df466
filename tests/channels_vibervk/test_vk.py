"""The VK community provider (``vk``) end to end: /v3 sendVK (``group`` + ``phone``) to the
local VK API peer, the photo upload flow, random_id idempotency, the error table, and the
Callback API at /hooks/vk/<id> (confirmation, secret, message_new / message_allow /
message_deny / message_reply)."""

from __future__ import annotations

import json
from typing import Any

from omnirelay.channels.vk import random_id
from omnirelay.testing.httppeer import DROP, GARBAGE
from omnirelay.testing.vk import VkPeer, vk_error
from tests.channels_vibervk.conftest import PHONE, replies, settle, wait_for

USER = 5_550_001
GROUP = "218000111"


def community(connect: Any, peer: VkPeer, **settings: Any) -> dict[str, Any]:
    return connect("vk", "vk", peer.settings(**settings), [GROUP])  # type: ignore[no-any-return]


def allow(hook: Any, peer: VkPeer, conn: dict[str, Any], user: int = USER) -> None:
    """The user allows the community's messages from the site's widget, whose key is
    their phone."""
    body = peer.callback("message_allow", {"user_id": user, "key": PHONE})
    r = hook(f"vk/{conn['id']}", body)
    assert r.status_code == 200 and r.text == "ok"


def send(v3: Any, **more: Any) -> str:
    r = v3("message/sendVK", {"group": int(GROUP), "phone": PHONE, "text": "Hello", **more})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_confirmation_is_answered_with_the_code_in_plain_text(connect, vk_peer, hook):
    conn = community(connect, vk_peer)
    assert conn["settings"]["access_token"] == "***" and conn["settings"]["secret"] == "***"
    r = hook(f"vk/{conn['id']}", vk_peer.callback("confirmation"))
    assert r.status_code == 200 and r.text == "a1b2c3d4"
    assert r.headers["content-type"].startswith("text/plain")
    other = hook(f"vk/{conn['id']}", vk_peer.callback("confirmation", group_id=1))
    assert other.status_code == 403


def test_a_send_reaches_the_allowed_user_delivered(connect, vk_peer, hook, v3, drain, stored):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    mid = send(v3)
    drain()
    [sent] = vk_peer.messages
    assert sent["user_id"] == str(USER) and sent["message"] == "Hello"
    assert sent["random_id"] == str(random_id(mid)) and sent["v"] == "5.199"
    message, [attempt] = stored(mid)
    assert attempt.provider == "vk" and attempt.provider_message_id == "1001"
    assert message.status == "delivered"  # VK has no receipts: taken means in the dialog


def test_a_retry_of_the_same_message_is_not_a_duplicate(
    connect, vk_peer, hook, v3, drain, advance, stored
):
    """The first try reaches VK but its answer is lost (dropped): the retry carries the
    same random_id, and VK answers the first message's id without sending again."""
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)

    def lost_answer(req: Any, n: int) -> Any:
        if n == 1:
            vk_peer.route(req)  # VK takes it ...
            return DROP  # ... and the answer never arrives
        return None

    vk_peer.script = lost_answer
    mid = send(v3)
    settle(drain, advance)
    assert len(vk_peer.messages) == 1
    _, [attempt] = stored(mid)
    assert attempt.status == "delivered" and attempt.provider_message_id == "1001"


def test_an_image_goes_through_the_upload_flow(connect, vk_peer, hook, v3, drain):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    # sendVK has no image: an omnichannel step carries one.
    r = v3(
        "message/send",
        {
            "route": [
                {
                    "channel": "vk",
                    "group": int(GROUP),
                    "phone": PHONE,
                    "text": "Look",
                    "image": vk_peer.image_url(),
                    "action": {"title": "Open", "url": "https://shop.example/x"},
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    drain()
    [sent] = vk_peer.messages
    assert json.loads(sent["keyboard"]) == {
        "inline": True,
        "buttons": [
            [{"action": {"type": "open_link", "link": "https://shop.example/x", "label": "Open"}}]
        ],
    }
    assert len(vk_peer.uploads) == 1 and vk_peer.uploads[0].startswith(b"\xff\xd8")
    assert sent["attachment"].startswith(f"photo-{GROUP}_") and sent["attachment"].endswith(
        "_a7f3c0de"
    )
    paths = [q.path for q in vk_peer.requests]
    assert paths.index("/method/photos.getMessagesUploadServer") < paths.index(
        "/method/photos.saveMessagesPhoto"
    )


def test_a_denied_user_is_1102_and_the_next_step_goes(connect, vk_peer, hook, v3, drain, stored):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    assert (
        hook(f"vk/{conn['id']}", vk_peer.callback("message_deny", {"user_id": USER})).text == "ok"
    )
    vk_peer.denied.add(USER)
    r = v3(
        "message/send",
        {
            "route": [
                {"channel": "vk", "group": int(GROUP), "phone": PHONE, "text": "hi"},
                {"channel": "sms", "sender": "SANDBOX", "phone": PHONE, "text": "hi"},
            ]
        },
    )
    drain()
    message, attempts = stored(r.json()["id"])
    assert (attempts[0].status, attempts[0].code) == ("undelivered", 1102)
    assert "VK error 901" in (attempts[0].error or "")
    assert attempts[1].channel == "sms" and message.status == "delivered"


def test_an_unknown_phone_is_a_clear_error(connect, vk_peer, v3, drain, stored):
    community(connect, vk_peer)
    mid = send(v3)
    drain()
    _, [attempt] = stored(mid)
    assert (attempt.status, attempt.code) == ("rejected", 1010)
    assert "no VK user known for phone" in (attempt.error or "")
    assert vk_peer.messages == []


def test_error_codes_map_onto_the_table(connect, vk_peer, hook, v3, drain, stored):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    cases = {
        5: ("error", 1003),
        9: ("rejected", 1101),
        100: ("rejected", 1021),
        777: ("rejected", 1100),
    }
    for code, expected in cases.items():
        vk_peer.script = lambda req, n, code=code: vk_error(code, f"error {code}")
        mid = send(v3)
        drain()
        _, [attempt] = stored(mid)
        assert (attempt.status, attempt.code) == expected, code
        assert f"VK error {code}" in (attempt.error or "")


def test_too_many_requests_500_and_drops_are_retried(
    connect, vk_peer, hook, v3, drain, advance, stored
):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    faults = [
        vk_error(6, "Too many requests per second"),
        (500, b"", {}),
        DROP,
        vk_error(10, "Internal server error"),
    ]
    vk_peer.script = lambda req, n: faults[n - 1] if n <= len(faults) else None
    mid = send(v3)
    settle(drain, advance)
    message, [attempt] = stored(mid)
    assert message.status == "delivered" and attempt.status == "delivered"
    assert len(vk_peer.messages) == 1


def test_garbage_is_a_clear_error_on_the_attempt(
    connect, vk_peer, hook, v3, drain, advance, stored
):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    vk_peer.script = lambda req, n: GARBAGE
    mid = send(v3)
    settle(drain, advance)
    _, [attempt] = stored(mid)
    assert attempt.status == "error"
    assert "unexpected answer from VK messages.send" in (attempt.error or "")


def test_message_new_is_a_reply_and_is_stored(
    connect, vk_peer, hook, v3, drain, receiver, deliverer, inbound
):
    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    mid = send(v3, reply=receiver.url("/reply"))
    drain()
    r = hook(f"vk/{conn['id']}", vk_peer.message_new(USER, "Thanks!"))
    assert r.status_code == 200 and r.text == "ok"
    drain()
    [reply] = wait_for(lambda: replies(receiver))
    assert reply["id"] == mid and reply["text"] == "Thanks!"
    [row] = inbound()
    assert (row.channel, row.phone, row.to, row.message_id) == ("vk", PHONE, GROUP, mid)
    # the community's own message (message_reply) changes nothing
    body = vk_peer.callback("message_reply", {"peer_id": USER, "text": "operator", "out": 1})
    assert hook(f"vk/{conn['id']}", body).text == "ok"
    drain()
    assert len(inbound()) == 1


def test_message_new_with_a_phone_ref_links_the_user(connect, vk_peer, hook, v3, drain):
    conn = community(connect, vk_peer)
    assert hook(f"vk/{conn['id']}", vk_peer.message_new(4242, "start", ref=PHONE)).text == "ok"
    drain()
    send(v3)
    drain()
    assert [m["user_id"] for m in vk_peer.messages] == ["4242"]


def test_a_wrong_secret_is_refused_and_nothing_is_stored(
    connect, vk_peer, hook, drain, inbound, v3, stored
):
    conn = community(connect, vk_peer)
    r = hook(
        f"vk/{conn['id']}",
        vk_peer.callback("message_allow", {"user_id": USER, "key": PHONE}, secret="guess"),
    )
    assert r.status_code == 403
    r = hook(f"vk/{conn['id']}", vk_peer.message_new(USER, "hi", secret=""))
    assert r.status_code == 403
    body = json.loads(vk_peer.message_new(USER, "hi"))
    del body["secret"]
    assert hook(f"vk/{conn['id']}", json.dumps(body).encode()).status_code == 403
    assert hook(f"vk/{conn['id']}", b"not json").status_code == 400
    drain()
    assert inbound() == []
    mid = send(v3)  # the allow was not recorded: the phone still reaches no one
    drain()
    assert stored(mid)[1][0].code == 1010


def test_settings_are_checked(client, org):
    r = client.post(
        "/api/connections",
        json={
            "channel": "vk",
            "provider": "vk",
            "name": "x",
            "settings": {"access_token": "t"},
            "senders": [GROUP],
        },
        headers=org.headers(),
    )
    assert r.status_code == 400 and "group_id" in r.text


def test_random_drops_and_500s_lose_nothing_and_duplicate_nothing(
    connect, vk_peer, hook, v3, drain, advance, stored
):
    """The chaos fault of this adapter: a fifth of the calls answer 500, a tenth are taken
    by VK and then dropped before the answer; every message ends delivered, each sent to
    VK once (random_id)."""
    import random

    conn = community(connect, vk_peer)
    allow(hook, vk_peer, conn)
    rng = random.Random(16)

    def chaos(req: Any, n: int) -> Any:
        roll = rng.random()
        if roll < 0.2:
            return (500, b"", {})
        if roll < 0.3:
            vk_peer.route(req)
            return DROP
        return None

    vk_peer.script = chaos
    ids = [send(v3, text=f"m{i}") for i in range(12)]
    settle(drain, advance, rounds=8)
    assert [stored(mid)[0].status for mid in ids] == ["delivered"] * 12
    assert sorted(m["message"] for m in vk_peer.messages) == sorted(f"m{i}" for i in range(12))
    assert len([q for q in vk_peer.requests if q.path == "/method/messages.send"]) > 12
