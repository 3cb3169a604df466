"""The delivery step of the drain engine: fair claims between organizations, events
emitted in batches (``emit_many``), a slow receiver's answer recorded with a later batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from omnirelay.db import Database, utcnow
from omnirelay.testing.receiver import Receiver, Reply
from omnirelay.webhooks import bulk_repository as bulk
from omnirelay.webhooks import service
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.conftest import Org
from tests.webhooks.conftest import LOOPBACK, wait_for

State = Callable[[str], WebhookEvent]


def _emit_many(db: Database, org: Org, url: str, n: int, **kw: object) -> list[str]:
    with db.transaction() as session:
        return service.emit_many(
            session,
            [service.NewEvent(org.id, url, "test.event", {"n": i}, **kw) for i in range(n)],  # type: ignore[arg-type]
        )


def test_a_claim_shares_its_batch_between_organizations(
    db: Database, make_org: Callable[..., Org]
) -> None:
    busy, quiet = make_org("Busy", "a@busy.test"), make_org("Quiet", "a@quiet.test")
    _emit_many(db, busy, "https://8.8.8.8/busy", 50)  # all due before the quiet one's
    [late] = _emit_many(db, quiet, "https://8.8.4.4/quiet", 1)
    now = utcnow() + timedelta(seconds=1)
    with db.transaction() as session:
        claimed = bulk.claim_due(
            session,
            "claim-1",
            limit=10,
            now=now,
            until=now + timedelta(seconds=60),
            per_url=100,
            url_room={},
        )
    ids = [c.id for c in claimed]
    assert len(ids) == 10
    assert late in ids  # not behind the other organization's 50


def test_a_claim_takes_at_most_the_room_of_a_url(db: Database, org: Org) -> None:
    _emit_many(db, org, "https://8.8.8.8/a", 20)
    _emit_many(db, org, "https://8.8.4.4/b", 3)
    now = utcnow() + timedelta(seconds=1)
    with db.transaction() as session:
        claimed = bulk.claim_due(
            session,
            "claim-1",
            limit=50,
            now=now,
            until=now + timedelta(seconds=60),
            per_url=5,
            url_room={"https://8.8.4.4/b": 1},
        )
    urls = [c.url for c in claimed]
    assert urls.count("https://8.8.8.8/a") == 5
    assert urls.count("https://8.8.4.4/b") == 1


def test_emit_many_makes_one_endpoint_and_delivers_in_order(
    receiver: Receiver,
    deliverer: Deliverer,
    db: Database,
    fast_org: Org,
    event_state: State,
) -> None:
    ids = _emit_many(db, fast_org, receiver.url(), 5, ordering_key="m-1")
    wait_for(lambda: all(event_state(i).status == "delivered" for i in ids))
    received = receiver.received()
    assert [json.loads(r.body)["n"] for r in received] == [0, 1, 2, 3, 4]
    assert [r.headers["webhook-id"] for r in received] == ids
    with db.transaction() as session:
        endpoints = session.scalar(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.organization_id == fast_org.id)
        )
    assert endpoints == 1


def test_emit_many_to_a_disabled_endpoint_records_them_disabled(
    receiver: Receiver,
    deliverer: Deliverer,
    db: Database,
    fast_org: Org,
    event_state: State,
) -> None:
    receiver.script = lambda r: Reply(410)
    [first] = _emit_many(db, fast_org, receiver.url(), 1)
    wait_for(lambda: event_state(first).status == "disabled")
    later = _emit_many(db, fast_org, receiver.url(), 3)
    assert {event_state(i).status for i in later} == {"disabled"}
    assert len(receiver.received()) == 1


def test_a_slow_answer_is_recorded_after_the_batch_it_came_with(
    db: Database, fast_org: Org, event_state: State
) -> None:
    """One batch holds a slow receiver's event and a quick one's: the quick ones are
    recorded while the slow one is still in flight, and the slow one later, once."""
    with Receiver(lambda r: Reply(200, delay=3.0)) as slow, Receiver() as quick:
        d = Deliverer(db, allowed_networks=LOOPBACK, timeout=10.0, poll_interval=0.2)
        [slow_id] = _emit_many(db, fast_org, slow.url(), 1)
        quick_ids = _emit_many(db, fast_org, quick.url(), 5)
        d.start()
        try:
            wait_for(lambda: all(event_state(i).status == "delivered" for i in quick_ids))
            wait_for(lambda: slow.received())  # its request is out ...
            ev = event_state(slow_id)
            if not ev.delivered_at:  # ... and, answered 3 s later, not recorded yet
                assert ev.status == "pending" and ev.attempts == 0
            wait_for(lambda: event_state(slow_id).status == "delivered", timeout=20)
        finally:
            d.stop(timeout=5)
        assert event_state(slow_id).attempts == 1
        assert len(slow.received()) == 1
