"""Dispatch is fair between organizations (issue 18 item 6): one organization's backlog
delays another's message by one batch at most."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.messaging.dispatch import DispatchStep
from omnirelay.messaging.models import Message
from tests.conftest import Org
from tests.notify.conftest import DELIVERED


def _statuses(db: Database, organization_id: str) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(
            select(Message.status, func.count())
            .where(Message.organization_id == organization_id)
            .group_by(Message.status)
        )
        return {status: int(n) for status, n in rows}


def test_another_organizations_message_goes_in_the_next_batch(
    client: TestClient, org: Org, make_org: Callable[..., Org], db: Database
) -> None:
    sms = {"channel": "sms", "sender": "SANDBOX", "phone": DELIVERED, "text": "x"}
    backlog = client.post("/v3/message/sendMixed", json=[{"route": [sms]}] * 60, headers=org.token)
    assert backlog.status_code == 200, backlog.text
    other = make_org("Other", "admin@other.test")
    late = client.post(
        "/v3/message/sendSMS",
        json={"sender": "SANDBOX", "phone": DELIVERED, "text": "y"},
        headers=other.token,
    )
    assert late.status_code == 200, late.text

    # Oldest first, one batch of 10 would hold only the backlog; fair shares take the
    # later organization's message now.
    assert Drain(db, DispatchStep(), batch=10).run_once() == 10
    # (org's sandbox reports at once: applied with the send, ADR 40; other's after 1 s.)
    assert _statuses(db, other.id) == {"sent": 1}
    assert _statuses(db, org.id) == {"delivered": 9, "accepted": 51}


def test_a_lone_organization_still_gets_whole_batches(
    client: TestClient, org: Org, db: Database
) -> None:
    sms = {"channel": "sms", "sender": "SANDBOX", "phone": DELIVERED, "text": "x"}
    client.post("/v3/message/sendMixed", json=[{"route": [sms]}] * 25, headers=org.token)
    assert Drain(db, DispatchStep(), batch=10).run_once() == 10
    assert _statuses(db, org.id) == {"delivered": 10, "accepted": 15}
