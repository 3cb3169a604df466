"""The pipeline end to end: failover across route steps with each failure kind, ttl
expiry, status reports and replies received (and verified) by a local HTTP receiver."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from omnirelay.connections import service as connections
from omnirelay.db import Database
from omnirelay.messaging import repository as messages
from omnirelay.testing.receiver import Receiver
from omnirelay.webhooks import service as webhooks
from tests.conftest import Org
from tests.notify.conftest import DELIVERED, wait_for

UNDELIVERED, SILENT, REJECTED, REPLY = "79160000001", "79160000002", "79160000003", "79160000005"


def add_connection(client: Any, org: Org, channel: str, sender: str, **settings: Any) -> int:
    r = client.post(
        "/api/connections",
        json={
            "channel": channel,
            "name": f"{channel} {sender}",
            "senders": [sender],
            "settings": {"report_delay": 0, "read_delay": 0, "reply_delay": 0, **settings},
        },
        headers=org.headers(),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def step(channel: str, sender: str, phone: str = DELIVERED, **kw: Any) -> dict[str, Any]:
    key = "group" if channel == "vk" else "sender"
    return {"channel": channel, "phone": phone, key: sender, "text": f"via {channel}", **kw}


def attempts(db: Database, message_id: str) -> list[tuple[str, str, int | None]]:
    with db.transaction() as session:
        return [(a.channel, a.status, a.code) for a in messages.attempts(session, message_id)]


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("undelivered", "undelivered", 1000),
        ("rejected", "rejected", 1000),
        ("error", "error", 1000),
    ],
)
def test_each_failure_kind_hands_over_to_the_next_step(
    client, org, v3, drain, message, db, outcome, status, code
):
    add_connection(client, org, "sms", "BROKEN", outcome=outcome)
    add_connection(client, org, "viber", "BROKEN", outcome=outcome)
    r = v3(
        "message/send",
        {"route": [step("sms", "BROKEN"), step("viber", "BROKEN"), step("vk", "1")]},
    )
    mid = r.json()["id"]
    drain()
    row = message(mid)
    assert (row.status, row.step, row.channel) == ("read", 2, "vk")
    assert attempts(db, mid) == [
        ("sms", status, code),
        ("viber", status, code),
        ("vk", "read", None),
    ]


def test_ttl_without_a_report_expires_the_step_and_hands_over(
    client, org, v3, drain, advance, message, db
):
    add_connection(client, org, "viber", "MUTE", outcome="silent")
    r = v3(
        "message/send",
        {"route": [step("viber", "MUTE", ttl=60), step("sms", "SANDBOX")]},
    )
    mid = r.json()["id"]
    drain()
    assert (message(mid).status, message(mid).step) == ("sent", 0)  # waiting for a report
    # Half the ttl: a wide margin, because the real clock keeps running under a slow CI run.
    advance(30)
    drain()
    assert message(mid).step == 0  # not yet: the ttl is 60 s
    advance(31)
    drain()
    assert attempts(db, mid) == [("viber", "expired", None), ("sms", "delivered", None)]
    assert message(mid).status == "delivered"


def test_last_step_failing_fails_the_message_with_its_status(v3, drain, advance, message):
    mid = v3(
        "message/sendSMS", {"sender": "SANDBOX", "phone": SILENT, "text": "x", "ttl": 60}
    ).json()["id"]
    drain()
    advance(61)
    drain()
    row = message(mid)
    assert (row.status, row.final_at is not None) == ("expired", True)


def test_magic_error_number_carries_its_code(v3, drain, message):
    mid = v3("message/sendSMS", {"sender": "SANDBOX", "phone": "79160041202", "text": "x"}).json()[
        "id"
    ]
    drain()
    row = message(mid)
    assert (row.status, row.code) == ("error", 1202)


def test_retriable_provider_error_is_retried_not_lost(v3, drain, advance, message, db):
    mid = v3("message/sendSMS", {"sender": "SANDBOX", "phone": "79160000006", "text": "x"}).json()[
        "id"
    ]
    drain()
    assert message(mid).status == "accepted"  # the provider was down: retry after a pause
    advance(1)
    drain()
    assert message(mid).status == "delivered"
    assert attempts(db, mid) == [("sms", "delivered", None)]  # one attempt, sent once


def test_a_late_report_never_moves_a_status_back(v3, drain, message, db, org):
    from omnirelay.channels.base import ProviderEvent
    from omnirelay.messaging import pipeline

    mid = v3("message/sendViber", {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"}).json()[
        "id"
    ]
    drain()
    assert message(mid).status == "read"
    with db.transaction() as session:
        [a] = messages.attempts(session, mid)
        pipeline.enqueue_event(
            session, org.id, a.connection_id, a.provider_message_id,
            ProviderEvent("status", status="delivered"),
        )  # fmt: skip
        pipeline.enqueue_event(
            session, org.id, a.connection_id, a.provider_message_id,
            ProviderEvent("status", status="undelivered"),
        )  # fmt: skip
    drain()
    assert message(mid).status == "read"
    assert attempts(db, mid) == [("viber", "read", None)]


def test_a_report_of_an_unknown_id_waits_then_is_dropped_not_dead_lettered(
    v3, drain, advance, db, org
):
    """An SMSC may report a copy sent before a failover, whose id was never recorded: the
    report waits for its attempt a while, then is dropped; nothing lands in dead letters."""
    from omnirelay.channels.base import ProviderEvent
    from omnirelay.messaging import pipeline
    from omnirelay.queue.models import Job

    with db.transaction() as session:
        conn = connections.list_connections(session, org.id, "sms")[0]
        pipeline.enqueue_event(
            session, org.id, conn.id, "never-recorded", ProviderEvent("status", status="delivered")
        )
    for _ in range(pipeline.EARLY_EVENT_TRIES + 1):
        drain()
        advance(120)
    with db.transaction() as session:
        left = session.scalars(select(Job.status).where(Job.kind == pipeline.EVENT)).all()
        assert left == []  # finished (done jobs are removed), not "dead", not waiting


def _bodies(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received(path)]


def test_status_reports_and_replies_reach_the_receiver_signed(
    client, org, v3, drain, db, receiver, deliverer
):
    add_connection(client, org, "sms", "BROKEN", outcome="undelivered")
    r = v3(
        "message/send",
        {
            "custom_id": "c-42",
            "report": receiver.url("/report"),
            "reply": receiver.url("/reply"),
            "route": [step("sms", "BROKEN", phone=REPLY), step("viber", "SANDBOX", phone=REPLY)],
        },
    )
    mid = r.json()["id"]
    drain()
    reports = wait_for(
        lambda: len(receiver.received("/report")) >= 4 and _bodies(receiver, "/report")
    )
    assert [(b["status"], b["channel"]) for b in reports] == [
        ("sent", "sms"), ("sent", "viber"), ("delivered", "viber"), ("read", "viber")
    ]  # fmt: skip
    for b in reports:
        assert b["id"] == mid and b["custom_id"] == "c-42"
        assert set(b) == {"id", "custom_id", "status", "channel", "error", "code", "price", "parts"}
    assert reports[1]["price"] == "0.03" and reports[1]["parts"] == 1
    [reply] = wait_for(lambda: _bodies(receiver, "/reply"))
    assert reply["id"] == mid and reply["custom_id"] == "c-42"
    assert reply["text"] == "Reply to: via viber"
    assert len(reply["date"]) == 19  # Y-m-d H:i:s
    with db.transaction() as session:
        secret = webhooks.settings(session, org.id).signing_secret
    for req in receiver.received():
        Webhook(secret).verify(req.body, req.headers)  # raises if the signature is wrong


def test_final_failure_report_carries_error_and_code(org, v3, drain, receiver, deliverer):
    r = v3(
        "message/sendSMS",
        {"sender": "SANDBOX", "phone": "79160041201", "text": "x", "report": receiver.url()},
    )
    drain()
    reports = wait_for(lambda: len(receiver.received()) >= 2 and _bodies(receiver, "/hook"))
    assert [b["status"] for b in reports] == ["sent", "error"]
    assert reports[1]["code"] == 1201 and reports[1]["channel"] == "sms"
    assert reports[1]["id"] == r.json()["id"]


def test_a_sent_message_is_finished_before_the_backlog_behind_it_is_sent(v3, db, message):
    """Reports of messages already sent do not wait for new dispatches: one due at once is
    applied with its send (ADR 40), a later one waits in the inbox, drained on its own,
    so under a backlog a customer hears about a message soon after it went, not after
    the whole backlog."""
    from omnirelay.drain import Drain
    from omnirelay.messaging.dispatch import DispatchStep
    from omnirelay.queue.registry import tasks
    from omnirelay.queue.worker import Worker

    ids = [
        v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": str(i)}).json()[
            "id"
        ]
        for i in range(6)
    ]
    assert Drain(db, DispatchStep(), batch=1).run_once() == 1  # the first dispatch
    Worker(db, tasks).run_until_idle()  # nothing left for the jobs: the report came with it
    assert message(ids[0]).status == "delivered"
    assert [message(i).status for i in ids[1:]] == ["accepted"] * 5


def test_a_finished_attempt_leaves_no_ttl_watch_behind(client, org, v3, drain, message, db):
    """The ttl watch of an attempt goes when the attempt ends (delivered, or failed and
    handed over): no job per message waits a day to run as a no-op."""
    from omnirelay.queue.models import Job

    add_connection(client, org, "viber", "BROKEN", outcome="undelivered")
    done = v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": "x"})
    handed = v3("message/send", {"route": [step("viber", "BROKEN"), step("sms", "SANDBOX")]})
    drain()
    assert message(done.json()["id"]).status == "delivered"
    assert message(handed.json()["id"]).status == "delivered"
    with db.transaction() as session:
        assert session.scalars(select(Job).where(Job.kind == "messages.ttl")).all() == []


def test_a_message_the_claim_cannot_read_does_not_hold_back_its_batch(v3, db, drain, message):
    """The dispatch claim decides a batch set-based (ADR 25); one message whose route it
    cannot read (a step without its ttl) goes its own way, retried later, while the rest
    of the batch is sent."""
    from omnirelay.messaging.models import Message

    broken = v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": "a"})
    fine = v3("message/sendSMS", {"sender": "SANDBOX", "phone": DELIVERED, "text": "b"})
    with db.transaction() as session:
        row = session.get(Message, broken.json()["id"])
        assert row is not None
        route = [dict(s) for s in row.route]
        del route[0]["ttl"]
        row.route = route
    drain()
    assert message(fine.json()["id"]).status == "delivered"
    held = message(broken.json()["id"])
    assert (held.status, held.tries) == ("accepted", 1)
    assert held.due_at is not None and held.claimed_by is None


def test_later_reports_wait_in_the_inbox_and_apply_in_one_batch(
    client, org, v3, drain, advance, message, db
):
    """A report due later than its send (ADR 40) waits as an inbox row, not a job; when
    it is due, the batch applies it: delivered, then read, in order, nothing left."""
    from omnirelay.messaging.models import PendingEvent
    from omnirelay.queue.models import Job

    add_connection(client, org, "viber", "SLOW", report_delay=30, read_delay=60)
    ids = [
        v3("message/sendViber", {"sender": "SLOW", "phone": DELIVERED, "text": str(i)}).json()["id"]
        for i in range(3)
    ]
    drain()
    assert [message(i).status for i in ids] == ["sent"] * 3
    with db.read() as session:
        assert session.scalars(select(Job).where(Job.kind == "messages.provider_event")).all() == []
        waiting = session.scalars(select(PendingEvent.status)).all()
        assert sorted(waiting) == ["delivered"] * 3 + ["read"] * 3
    advance(40)
    drain()
    assert [message(i).status for i in ids] == ["delivered"] * 3
    advance(40)
    drain()
    assert [message(i).status for i in ids] == ["read"] * 3
    assert attempts(db, ids[0]) == [("viber", "read", None)]
    with db.read() as session:
        assert session.scalars(select(PendingEvent)).all() == []
