"""Rate limiting per subscription: 429 with Retry-After, shared across processes within
one lease (ADR 22; the other surfaces: tests/security/test_rate_limits.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.ratelimit.limiter import credit_for
from tests.conftest import Org
from tests.webhooks.conftest import wait_for

WINDOW = 1_000_000


@pytest.fixture
def limited(database_url: str) -> Settings:
    # A window of ~11 days: a test never straddles a window boundary.
    return Settings(
        database_url=database_url, rate_limit_requests=5, rate_limit_window_seconds=WINDOW
    )


@pytest.fixture
def limited_client(db: Database, limited: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(limited, db=db)) as c:
        yield c


def _get(c: TestClient, headers: dict[str, str]) -> int:
    """One call, then wait for the limiter's lease (calls that are not simultaneous)."""
    code = c.get("/api/me", headers=headers).status_code
    wait_for(c.app.state.ctx.limiter.settled)  # type: ignore[attr-defined]
    return code


def test_429_with_retry_after(
    limited_client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    codes = [_get(limited_client, org.headers()) for _ in range(5)]
    assert codes == [200] * 5
    r = limited_client.get("/api/me", headers=org.headers())
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limit_exceeded" and r.json()["statusCode"] == 429
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW
    # the secondary key is the same subscription
    r = limited_client.get("/api/me", headers=org.headers(key=org.subscription_keys["secondary"]))
    assert r.status_code == 429
    # another subscription is not affected
    other = make_org("Other", "admin@other.test")
    assert limited_client.get("/api/me", headers=other.headers()).status_code == 200


def test_remaining_header_counts_down(limited_client: TestClient, org: Org) -> None:
    seen = []
    for _ in range(3):
        r = limited_client.get("/api/me", headers=org.headers())
        seen.append(int(r.headers["X-RateLimit-Remaining"]))
        wait_for(limited_client.app.state.ctx.limiter.settled)  # type: ignore[attr-defined]
    assert seen == [4, 3, 2]


def test_per_organization_override(limited_client: TestClient, org: Org, db: Database) -> None:
    from omnirelay.tenancy.models import Organization

    with db.transaction() as session:
        row = session.get(Organization, org.id)
        assert row is not None
        row.rate_limit_requests = 2
    codes = [_get(limited_client, org.headers()) for _ in range(3)]
    assert codes == [200, 200, 429]


def test_limit_is_shared_by_separate_processes(
    database_url: str, limited: Settings, org: Org
) -> None:
    """Two app instances, each with its own engine and pool (as two processes would have),
    hammered concurrently: at least `limit` calls pass in total, and at most one credit
    more per process (quota is leased ahead, so a request never waits on the database)."""
    limit = 20
    settings = limited.model_copy(update={"rate_limit_requests": limit})
    dbs = [Database(database_url), Database(database_url)]
    statuses: list[int] = []
    lock = threading.Lock()
    try:
        clients = [TestClient(create_app(settings, db=d)) for d in dbs]

        def hammer(c: TestClient) -> None:
            for _ in range(10):
                code = c.get("/api/me", headers=org.headers()).status_code
                with lock:
                    statuses.append(code)

        threads = [threading.Thread(target=hammer, args=(clients[i % 2],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for d in dbs:
            d.dispose()
    assert len(statuses) == 60
    assert limit <= statuses.count(200) <= limit + 2 * credit_for(limit)
    assert statuses.count(200) + statuses.count(429) == 60
