"""Delivery through a real HTTP receiver on loopback: signatures, status classes, schedule."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from standardwebhooks import Webhook

from omnirelay.db import Database
from omnirelay.testing.receiver import Received, Receiver, Reply
from omnirelay.webhooks import service
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import WebhookEvent
from tests.conftest import Org
from tests.webhooks.conftest import FAST_SCHEDULE, LOOPBACK, wait_for

Emit = Callable[..., str]
State = Callable[[str], WebhookEvent]


def _attempts(db: Database, org: Org, event_id: str) -> list[object]:
    with db.transaction() as session:
        return list(service.get_event(session, org.id, event_id)[1])


def test_signature_verifies_with_standardwebhooks(
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Emit,
    event_state: State,
    db: Database,
    fast_org: Org,
) -> None:
    event_id = emit(receiver.url(), {"status": "delivered", "text": "Привет"})
    wait_for(lambda: event_state(event_id).status == "delivered")
    [req] = receiver.received()
    with db.transaction() as session:
        secret = service.settings(session, fast_org.id).signing_secret
    payload = Webhook(secret).verify(req.body, req.headers)
    assert payload == {"status": "delivered", "text": "Привет"}
    assert req.headers["webhook-id"] == event_id
    assert req.headers["content-type"] == "application/json"
    assert req.headers["host"] == f"127.0.0.1:{receiver.port}"


def test_rotation_sends_two_signatures_both_valid(
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Emit,
    event_state: State,
    db: Database,
    fast_org: Org,
) -> None:
    with db.transaction() as session:
        old = service.settings(session, fast_org.id).signing_secret
        new = service.rotate_signing_secret(session, fast_org.id).signing_secret
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).status == "delivered")
    [req] = receiver.received()
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(req.body, req.headers)


def test_5xx_is_retried_with_the_same_id(
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Emit,
    event_state: State,
    db: Database,
    fast_org: Org,
) -> None:
    receiver.script = lambda r: Reply(503) if len(receiver.received()) <= 2 else Reply(204)
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).status == "delivered")
    reqs = receiver.received()
    assert [r.headers["webhook-id"] for r in reqs] == [event_id] * 3
    assert event_state(event_id).attempts == 3
    log = _attempts(db, fast_org, event_id)
    assert [a.status_code for a in log] == [503, 503, 204]  # type: ignore[attr-defined]
    assert [a.outcome for a in log] == ["retry", "retry", "delivered"]  # type: ignore[attr-defined]
    # the waits follow the schedule (never earlier than it says)
    assert reqs[1].at - reqs[0].at >= FAST_SCHEDULE[0] - 0.05
    assert reqs[2].at - reqs[1].at >= FAST_SCHEDULE[1] - 0.05


def test_schedule_exhausted_marks_failed(
    receiver: Receiver, deliverer: Deliverer, emit: Emit, event_state: State
) -> None:
    receiver.script = lambda r: Reply(500)
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).status == "failed")
    assert len(receiver.received()) == len(FAST_SCHEDULE) + 1
    assert event_state(event_id).last_status_code == 500


def test_redirect_is_not_followed(
    receiver: Receiver, deliverer: Deliverer, emit: Emit, event_state: State
) -> None:
    receiver.script = lambda r: (
        Reply(302, {"location": receiver.url("/elsewhere")}) if r.path == "/hook" else Reply(200)
    )
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).attempts >= 2)
    assert receiver.received("/elsewhere") == []
    assert event_state(event_id).last_status_code == 302
    assert event_state(event_id).status in ("pending", "failed")


def test_410_disables_the_endpoint(
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Emit,
    event_state: State,
    db: Database,
    fast_org: Org,
) -> None:
    receiver.script = lambda r: Reply(410)
    first = emit(receiver.url())
    wait_for(lambda: event_state(first).status == "disabled")
    later = emit(receiver.url())
    assert event_state(later).status == "disabled"
    time.sleep(0.5)
    assert len(receiver.received()) == 1  # the later event is never sent
    with db.transaction() as session:
        [endpoint] = service.list_endpoints(session, fast_org.id)
        assert endpoint.disabled_at is not None and "410" in (endpoint.disabled_reason or "")


def test_429_retry_after_is_honoured(
    receiver: Receiver, deliverer: Deliverer, emit: Emit, event_state: State
) -> None:
    receiver.script = lambda r: (
        Reply(429, {"retry-after": "2"}) if len(receiver.received()) == 1 else Reply(200)
    )
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).status == "delivered")
    first, second = receiver.received()
    assert second.at - first.at >= 1.9  # longer than the schedule's 0.2 s


def test_timeout_is_retried(
    receiver: Receiver,
    deliverer: Deliverer,
    emit: Emit,
    event_state: State,
    db: Database,
    fast_org: Org,
) -> None:
    receiver.script = lambda r: Reply(200, delay=3.0) if len(receiver.received()) == 1 else Reply()
    event_id = emit(receiver.url())
    wait_for(lambda: event_state(event_id).status == "delivered")
    first = _attempts(db, fast_org, event_id)[0]
    assert first.status_code is None and "timeout" in (first.error or "")  # type: ignore[attr-defined]


def test_connection_refused_is_retried(
    deliverer: Deliverer, emit: Emit, event_state: State, db: Database, fast_org: Org
) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    event_id = emit(f"http://127.0.0.1:{port}/hook")
    wait_for(lambda: event_state(event_id).attempts >= 2)
    log = _attempts(db, fast_org, event_id)
    assert all(a.status_code is None and a.outcome == "retry" for a in log[:2])  # type: ignore[attr-defined]


def test_callback_server_body_carries_the_seed_secret(
    receiver: Receiver, deliverer: Deliverer, db: Database, fast_org: Org, event_state: State
) -> None:
    with db.transaction() as session:
        service.set_callback_server(session, fast_org.id, receiver.url("/cb"), "s3cret")
        ev = service.emit_callback(session, fast_org.id, "campaign_finished", {"id": "c1"})
        assert ev is not None
        event_id = ev.id
    wait_for(lambda: event_state(event_id).status == "delivered")
    [req] = receiver.received("/cb")
    assert json.loads(req.body) == {
        "name": "campaign_finished",
        "data": {"id": "c1"},
        "secret": "s3cret",
    }


def test_events_roll_back_with_their_transaction(
    receiver: Receiver, deliverer: Deliverer, db: Database, fast_org: Org
) -> None:
    class Boom(Exception):
        pass

    try:
        with db.transaction() as session:
            service.emit(session, fast_org.id, receiver.url(), "x", {})
            raise Boom
    except Boom:
        pass
    time.sleep(0.5)
    assert receiver.received() == []
    with db.transaction() as session:
        assert service.list_events(
            session, fast_org.id, status=None, since=None, limit=10, offset=0
        ) == ([], 0)


def test_ordering_per_key_survives_retries(
    receiver: Receiver, deliverer: Deliverer, emit: Emit, event_state: State
) -> None:
    failed_once: set[int] = set()
    accepted: list[int] = []

    def flaky(r: Received) -> Reply:
        n = json.loads(r.body)["n"]
        if n % 3 == 0 and n not in failed_once:  # every third fails once
            failed_once.add(n)
            return Reply(500)
        accepted.append(n)
        return Reply(200)

    receiver.script = flaky
    ids = [emit(receiver.url(), {"n": n}, ordering_key="msg-1") for n in range(12)]
    wait_for(lambda: all(event_state(i).status == "delivered" for i in ids), timeout=30)
    assert accepted == list(range(12))
    assert failed_once == {0, 3, 6, 9}


def test_hanging_receiver_does_not_block_others(
    db: Database, fast_org: Org, emit: Emit, event_state: State
) -> None:
    with Receiver(lambda r: Reply(200, delay=30)) as hanging, Receiver() as healthy:
        d = Deliverer(db, allowed_networks=LOOPBACK, timeout=20, per_url=2, concurrency=8)
        d.start()
        try:
            for _ in range(6):
                emit(hanging.url())
            fine = [emit(healthy.url(), {"n": n}) for n in range(20)]
            wait_for(lambda: all(event_state(i).status == "delivered" for i in fine), timeout=10)
            assert len(hanging.received()) <= 2  # only its own per-URL share is in flight
        finally:
            hanging.stop()
            d.stop(timeout=5)
