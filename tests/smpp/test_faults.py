"""Faults, driven by a small scriptable SMSC: no answer, generic_nack, throttling, queue
full, unbind and TCP drop mid-window, slow answers, garbage, refusals, a failed bind, a
receipt before its submit_sm_resp. Each ends with the message delivered (or failed as the
SMSC said), sent again only where the SMSC gave no id."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from omnirelay.messaging.models import Message
from omnirelay.testing.fakesmsc import Action, FakeSmsc
from tests.smpp.conftest import SHORT_TIMEOUT


@pytest.fixture
def fake():
    with FakeSmsc() as smsc:
        yield smsc


def first_only(action: Action):
    return lambda sub, n: action if n == 1 else Action()


@pytest.mark.parametrize(
    ("action", "submits", "binds"),
    [
        (Action("silent"), 2, 1),  # no answer: timed out, sent again
        (Action("nack"), 2, 1),  # generic_nack: sent again
        (Action("status", 0x58), 2, 1),  # throttled: pause, sent again
        (Action("status", 0x14), 2, 1),  # message queue full: pause, sent again
        (Action("unbind"), 2, 2),  # the SMSC unbinds mid-window: rebind, send again
        (Action("drop"), 2, 2),  # TCP drop: reconnect, send again
        (Action("late", delay=0.2), 1, 1),  # slow but in time: sent once
        (Action("garbage"), 1, 1),  # an unknown PDU is nacked; the session goes on
        (Action("receipt_first"), 1, 1),  # the receipt beats submit_sm_resp: not lost
    ],
    ids=["silent", "nack", "throttled", "queue-full", "unbind", "drop", "slow", "garbage",
         "receipt-first"],
)  # fmt: skip
def test_fault_then_delivered(fake, connect, manager, send, pump, status, action, submits, binds):
    fake.script = first_only(action)
    # Only "silent" waits for the answer timeout; the rest are answered (or cut) at once.
    connect(fake.port, **(SHORT_TIMEOUT if action.kind == "silent" else {}))
    mid = send("hi")
    pump(lambda: status(mid) == "delivered")
    assert len(fake.submits) == submits
    assert fake.binds == binds


def test_refusal_is_final_with_the_seed_code(fake, connect, manager, send, pump, status, db):
    fake.script = lambda sub, n: Action("status", 0x0B)  # invalid destination address
    connect(fake.port)
    mid = send("hi")
    pump(lambda: status(mid) == "rejected")
    with db.transaction() as session:
        message = session.scalars(select(Message).where(Message.id == mid)).one()
        assert message.code == 1010 and "0x0000000b" in (message.error or "")
    assert len(fake.submits) == 1  # not retried


def test_retries_are_bounded(fake, connect, manager, send, pump, status):
    fake.script = lambda sub, n: Action("silent")
    connect(fake.port, max_tries=2, **SHORT_TIMEOUT)
    mid = send("hi")
    pump(lambda: status(mid) == "error")
    assert len(fake.submits) == 2


def test_bind_refused_marks_the_connection_down(connect, manager, send, pump, client, org, status):
    with FakeSmsc(bind_status=0x0E) as fake:  # invalid password
        cid = connect(fake.port)
        mid = send("hi")

        def down():
            body = client.get(f"/api/connections/{cid}", headers=org.headers()).json()
            session = body["session"]
            return session and session["state"] == "down" and session["last_error"] and session

        session = pump(down)
        assert "BindRefused" in session["last_error"]
        assert status(mid) == "accepted"  # queued for the session; its ttl runs meanwhile
        assert fake.submits == []


def test_window_limits_submits_in_flight(fake, connect, manager, send, pump, status):
    fake.script = lambda sub, n: Action("late", delay=0.1)
    connect(fake.port, window=3)
    ids = [send(f"m{i}") for i in range(12)]
    pump(lambda: all(status(i) == "delivered" for i in ids))
    assert fake.max_outstanding == 3  # the window was used, and never exceeded
    assert len(fake.submits) == 12


def test_transmitter_receiver_binds_two_sessions(fake, connect, manager, send, pump, status):
    from omnirelay.testing.fakesmsc import BIND_RX, BIND_TX

    connect(fake.port, bind="transmitter_receiver")
    mid = send("hi")
    pump(lambda: status(mid) == "delivered")
    assert sorted(fake.bind_kinds) == sorted([BIND_TX, BIND_RX])


def test_throughput_limit_spaces_submits(fake, connect, manager, send, pump, status):
    import time

    times: list[float] = []
    fake.script = lambda sub, n: times.append(time.monotonic()) or Action()
    connect(fake.port, throughput=20, window=50)
    ids = [send(f"m{i}") for i in range(10)]
    pump(lambda: len(fake.submits) == 10)
    assert times[-1] - times[0] >= 9 / 20 * 0.9  # ten submits at 20/s take ~0.45 s
    pump(lambda: all(status(i) == "delivered" for i in ids))


def test_shutdown_unbinds(fake, connect, db, send, pump, status):
    from omnirelay.net.ssrf import parse_networks
    from omnirelay.smpp.manager import SessionManager

    manager = SessionManager(
        db, refresh=0.2, allowed_networks=parse_networks("127.0.0.0/8")
    ).start()
    connect(fake.port)
    mid = send("hi")
    pump(lambda: status(mid) == "delivered")
    manager.stop()
    assert fake.unbinds == 1


def test_the_configured_session_lease_is_the_one_taken(fake, connect, db, settings):
    """OMNIRELAY_SMPP_SESSION_LEASE_SECONDS reaches the lease a process takes: how long a
    connection of a dead process waits for a new owner."""
    from omnirelay.connections.models import ConnectionLease
    from omnirelay.db import utcnow
    from omnirelay.runtime import Runtime

    cid = connect(fake.port)
    runtime = Runtime(db, settings.model_copy(update={"smpp_session_lease_seconds": 90.0}))
    try:
        runtime.sessions.refresh()
        with db.transaction() as session:
            row = session.get(ConnectionLease, cid)
            assert row is not None and row.owner == runtime.sessions.owner
            left = (row.lease_until - utcnow()).total_seconds()
        assert 80 < left <= 90
    finally:
        for connection_id in list(runtime.sessions.runners):
            runtime.sessions._drop(connection_id)
