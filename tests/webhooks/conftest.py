from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from omnirelay.db import Database
from omnirelay.testing.receiver import Receiver
from omnirelay.webhooks import service
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import WebhookEvent
from omnirelay.webhooks.ssrf import parse_networks
from tests.conftest import Org

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
FAST_SCHEDULE = [0.2, 0.4, 0.6]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def fast_org(db: Database, org: Org) -> Org:
    with db.transaction() as session:
        service.set_retry_schedule(session, org.id, FAST_SCHEDULE)
    return org


@pytest.fixture
def deliverer(db: Database, fast_org: Org) -> Iterator[Deliverer]:
    d = Deliverer(db, allowed_networks=LOOPBACK, timeout=1.0, poll_interval=0.5)
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def emit(db: Database, fast_org: Org) -> Callable[..., str]:
    def _emit(url: str, payload: dict[str, Any] | None = None, **kw: Any) -> str:
        with db.transaction() as session:
            ev = service.emit(session, fast_org.id, url, "test.event", payload or {"n": 1}, **kw)
            return ev.id

    return _emit


@pytest.fixture
def event_state(db: Database, fast_org: Org) -> Callable[[str], WebhookEvent]:
    def _state(event_id: str) -> WebhookEvent:
        with db.transaction() as session:
            ev, _ = service.get_event(session, fast_org.id, event_id)
            return ev

    return _state
