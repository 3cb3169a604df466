"""Rate limiting per subscription: 429 with Retry-After, shared across processes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database
from tests.conftest import Org

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


def test_429_with_retry_after(
    limited_client: TestClient, org: Org, make_org: Callable[..., Org]
) -> None:
    codes = [limited_client.get("/api/me", headers=org.headers()).status_code for _ in range(5)]
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
    seen = [
        int(limited_client.get("/api/me", headers=org.headers()).headers["X-RateLimit-Remaining"])
        for _ in range(3)
    ]
    assert seen == [4, 3, 2]


def test_per_organization_override(limited_client: TestClient, org: Org, db: Database) -> None:
    from omnirelay.tenancy.models import Organization

    with db.transaction() as session:
        row = session.get(Organization, org.id)
        assert row is not None
        row.rate_limit_requests = 2
    codes = [limited_client.get("/api/me", headers=org.headers()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_limit_is_shared_by_separate_processes(
    database_url: str, limited: Settings, org: Org
) -> None:
    """Two app instances, each with its own engine and pool (as two processes would have),
    hammered concurrently: exactly `limit` calls pass in total."""
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
    assert statuses.count(200) == limit
    assert statuses.count(429) == 60 - limit
