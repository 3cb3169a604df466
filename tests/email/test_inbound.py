"""Email in, end to end: a message sent from /v3 comes back to omnirelay's SMTP listener
as a DSN bounce (status undelivered, a report, the next route step) or as the customer's
reply (stored, and POSTed to the message's reply URL); addresses that are no
organization's are refused; limits hold."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.messaging.models import InboundMessage
from omnirelay.queue.models import Job
from omnirelay.smtp.listener import MailListener
from omnirelay.testing.receiver import Receiver
from omnirelay.testing.smtppeer import SmtpPeer
from tests.conftest import Org
from tests.email.conftest import (
    TO,
    bodies,
    create_connection,
    deliver,
    dsn,
    message,
    reply,
    sent,
    step,
    wait_for,
)


def test_a_dsn_bounce_makes_the_message_undelivered_and_reports_it(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
) -> None:
    mid, pid = sent(v3, drain, client, org, peer, report=receiver.url("/report"))
    deliver(listener, "", ["news@shop.example"], dsn(pid))
    assert listener.outcomes["bounce"] == 1
    drain()
    detail = message(client, org, mid)
    assert (detail["status"], detail["code"]) == ("undelivered", 1010)
    assert "5.1.1" in detail["error"] and "User unknown" in detail["error"]
    reports = wait_for(
        lambda: len(receiver.received("/report")) >= 2 and bodies(receiver, "/report")
    )
    assert [b["status"] for b in reports] == ["sent", "undelivered"]
    assert reports[1]["code"] == 1010


def test_a_bounce_hands_the_message_to_the_next_step(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    sms = {"channel": "sms", "sender": "SANDBOX", "text": "Your order", "phone": "79161234567"}
    r = v3("message/send", {"route": [step(), sms]})
    mid = r.json()["id"]
    drain()
    pid = message(client, org, mid)["attempts"][0]["provider_message_id"]
    # Matched by the envelope id omnirelay sent (ENVID), as xtext.
    deliver(listener, "", ["news+bounces@shop.example"], dsn("unrelated@elsewhere", envid=pid))
    drain()
    detail = message(client, org, mid)
    assert [a["channel"] for a in detail["attempts"]] == ["email", "sms"]
    assert detail["attempts"][0]["status"] == "undelivered"


def test_a_delayed_dsn_changes_nothing(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    mid, pid = sent(v3, drain, client, org, peer)
    deliver(listener, "", ["news@shop.example"], dsn(pid, status="4.4.7", action="delayed"))
    drain()
    assert message(client, org, mid)["status"] == "sent"
    assert listener.outcomes["ignored"] == 1


def test_a_reply_reaches_the_reply_url_and_is_stored(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    receiver: Receiver,
    deliverer: Any,
    db: Database,
) -> None:
    mid, pid = sent(
        v3, drain, client, org, peer, reply=receiver.url("/reply"), custom_id="order-42"
    )
    text = (
        "Thanks! Can you deliver on Friday?\n\n"
        "On Mon, Shop <news@shop.example> wrote:\n> Your order\n> is on its way"
    )
    deliver(listener, TO, ["Support@Shop.Example"], reply(pid, text))
    drain()
    [body] = wait_for(lambda: bodies(receiver, "/reply"))
    assert body["id"] == mid and body["custom_id"] == "order-42"
    assert body["text"] == "Thanks! Can you deliver on Friday?"
    with db.transaction() as session:
        [row] = session.scalars(select(InboundMessage)).all()
        assert (row.channel, row.address, row.phone, row.message_id) == ("email", TO, "", mid)
        assert row.to == "Support@Shop.Example"
        assert row.connection_id == connection["id"]


def test_a_reply_to_no_known_message_is_kept_unlinked(
    org: Org,
    connection: dict[str, Any],
    listener: MailListener,
    drain: Callable[[], int],
    db: Database,
) -> None:
    deliver(listener, TO, ["news@shop.example"], reply("nothing@we.sent", "Hello?"))
    drain()
    with db.transaction() as session:
        [row] = session.scalars(select(InboundMessage)).all()
        assert (row.text, row.message_id, row.address) == ("Hello?", None, TO)


def test_an_out_of_office_is_not_a_reply(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
    db: Database,
) -> None:
    _, pid = sent(v3, drain, client, org, peer)
    deliver(
        listener, TO, ["news@shop.example"], reply(pid, "I am away", Auto_Submitted="auto-replied")
    )
    drain()
    with db.transaction() as session:
        assert session.scalars(select(InboundMessage)).all() == []
    assert listener.outcomes["ignored"] == 1


def test_unknown_recipients_are_refused(
    org: Org, connection: dict[str, Any], listener: MailListener
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        deliver(listener, TO, ["nobody@shop.example"], reply("x@y", "hi"))
    [(code, text)] = refused.value.recipients.values()
    assert code == 550 and b"5.1.1" in text
    assert listener.outcomes["refused"] == 1


def test_another_organizations_message_is_out_of_reach(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    make_org: Callable[..., Org],
    v3: Callable[..., Any],
    drain: Callable[[], int],
    advance: Callable[[float], None],
    db: Database,
) -> None:
    mid, pid = sent(v3, drain, client, org, peer)
    other = make_org("Other", "admin@other.test")
    r = create_connection(client, other, peer.settings(from_address="hello@other.example"))
    assert r.status_code == 201, r.text
    # A bounce sent to the other organization's address, naming this one's message: it
    # is looked for among the other organization's attempts only, and never found.
    deliver(listener, "", ["hello@other.example"], dsn(pid))
    for _ in range(25):  # every retry of the early-event wait, until it is dropped
        drain()
        advance(3600)
    assert message(client, org, mid)["status"] == "delivered"  # the window passed, unbounced
    with db.read() as session:
        jobs = session.scalars(select(Job).where(Job.kind == "messages.provider_event")).all()
        assert [j for j in jobs if j.organization_id == other.id and j.status == "todo"] == []
    assert listener.outcomes["bounce"] == 1  # handed to the pipeline, which found nothing


def test_size_and_recipient_limits(
    db: Database, settings: Settings, org: Org, connection: dict[str, Any]
) -> None:
    small = settings.model_copy(update={"smtp_max_message_bytes": 2000, "smtp_max_recipients": 1})
    with MailListener(db, small, host="127.0.0.1", port=0) as mail:
        with pytest.raises(smtplib.SMTPSenderRefused) as big:  # SIZE= over the limit
            deliver(mail, TO, ["news@shop.example"], reply("x@y", "a" * 5000))
        assert big.value.smtp_code == 552
        with smtplib.SMTP("127.0.0.1", mail.port, timeout=10) as c:
            c.ehlo()
            c.mail(TO)
            assert c.rcpt("news@shop.example")[0] == 250
            assert c.rcpt("support@shop.example")[0] == 452


def test_the_runtime_starts_the_listener_only_when_configured(
    db: Database, settings: Settings
) -> None:
    from omnirelay.runtime import Runtime

    assert Runtime(db, settings).mail is None
    configured = settings.model_copy(update={"smtp_listen": "127.0.0.1:0"})
    runtime = Runtime(db, configured)
    assert runtime.mail is not None
    runtime.mail.start()
    try:
        with smtplib.SMTP("127.0.0.1", runtime.mail.port, timeout=10) as c:
            assert c.noop()[0] == 250
    finally:
        runtime.mail.stop()


def test_a_bounce_before_its_send_is_recorded_waits_for_it(
    client: TestClient,
    org: Org,
    connection: dict[str, Any],
    peer: SmtpPeer,
    listener: MailListener,
    v3: Callable[..., Any],
    drain: Callable[[], int],
) -> None:
    mid = v3("message/send", {"route": [step()]}).json()["id"]
    pid = f"{mid.replace('-', '')}@shop.example"  # the Message-ID it will be sent with
    deliver(listener, "", ["news@shop.example"], dsn(pid))
    assert listener.outcomes["bounce"] == 1
    drain()
    assert message(client, org, mid)["status"] == "undelivered"
