"""Fixtures of the notifications tests: a fast sandbox, a synchronous worker, a clock
that jumps (by moving due times back), a webhook receiver with the deliverer running."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import omnirelay.tasks  # noqa: F401  (registers the pipeline's handlers)
from omnirelay.connections import service as connections
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.testing.receiver import Receiver
from omnirelay.webhooks import service as webhooks
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.ssrf import parse_networks
from tests.conftest import Org
from tests.pipeline import Pipeline, jump

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
DELIVERED = "79161234567"  # an ordinary Russian mobile: the sandbox delivers it
US_NUMBER = "12125550123"  # New York


@pytest.fixture
def settings(database_url: str) -> Any:
    from omnirelay.config import Settings

    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        webhook_allowed_networks="127.0.0.0/8,::1/128",
    )


@pytest.fixture
def org(make_org: Callable[..., Org], db: Database) -> Org:
    """An organization whose sandbox answers at once (no report delays)."""
    created = make_org()
    with db.transaction() as session:
        for row in connections.list_connections(session, created.id):
            connections.update(
                session,
                created.id,
                row.id,
                {"settings": {"report_delay": 0, "read_delay": 0, "reply_delay": 0}},
            )
        webhooks.set_retry_schedule(session, created.id, [0.2, 0.4])
    return created


@pytest.fixture
def v3(client: TestClient, org: Org) -> Callable[..., Any]:
    """POST to /v3 with the organization's token: ``v3("message/sendSMS", {...})``."""

    def call(path: str, body: Any = None, *, headers: dict[str, str] | None = None) -> Any:
        return client.post(f"/v3/{path}", json=body, headers={**org.token, **(headers or {})})

    return call


@pytest.fixture
def drain(db: Database) -> Callable[[], int]:
    """Run every due dispatch and job in this thread until none is left."""
    return Pipeline(db).run_until_idle


@pytest.fixture
def advance(db: Database) -> Callable[[float], None]:
    """Make jobs and dispatches due ``seconds`` earlier: the clock jumps forward."""
    return lambda seconds: jump(db, seconds)


@pytest.fixture
def message(db: Database) -> Callable[[str], Message]:
    def get(message_id: str) -> Message:
        with db.transaction() as session:
            row = session.scalars(select(Message).where(Message.id == message_id)).one()
            session.expunge(row)
            return row

    return get


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def deliverer(db: Database, org: Org) -> Iterator[Deliverer]:
    d = Deliverer(db, allowed_networks=LOOPBACK, timeout=2.0, poll_interval=0.2)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")
