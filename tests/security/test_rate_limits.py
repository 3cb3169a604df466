"""Issue 18, item 5: the organization's limit on every surface, each answering 429 in
its own shape, X-RateLimit-* on every answer; per-IP budgets for failed credentials and
the gateway's OTP; the quota leased from the database, not written per request."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from omnirelay.app import create_app
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.gateway import service as gateway
from omnirelay.ratelimit.limiter import credit_for
from omnirelay.tenancy import service as tenancy
from tests.conftest import Org
from tests.webhooks.conftest import wait_for

WINDOW = 1_000_000  # ~11 days: no test straddles a window


@pytest.fixture
def limited(db: Database, settings: Settings) -> Iterator[TestClient]:
    tight = settings.model_copy(
        update={
            "rate_limit_requests": 5,
            "rate_limit_window_seconds": WINDOW,
            "rate_limit_anonymous_requests": 3,
            "rate_limit_otp_requests": 2,
        }
    )
    with TestClient(create_app(tight, db=db)) as c:
        yield c


class Caller:
    """One organization's credentials for every surface."""

    def __init__(self, db: Database, name: str, email: str) -> None:
        with db.transaction() as session:
            created = tenancy.create_organization(
                session, name, admin_email=email, admin_name="Admin", created_via="cli"
            )
            self.account_token = gateway.rotate_account_token(session, created.organization.id)
        assert created.access_token is not None and created.admin is not None
        self.org = Org(
            created.organization.id,
            dict(created.subscription_keys),
            created.access_token,
            created.admin.id,
            created.api_token,
        )
        basic = f"{created.credentials['account_sid']}:{created.credentials['auth_token']}"
        self.basic = {"Authorization": "Basic " + base64.b64encode(basic.encode()).decode()}

    def calls(self) -> dict[str, Callable[[TestClient], Any]]:
        o = self.org
        return {
            "api": lambda c: c.get("/api/me", headers=o.headers()),
            "v3": lambda c: c.post("/v3/balance", headers=o.token),
            "user": lambda c: c.post("/user/callback/secret", headers=o.token),
            "3.0": lambda c: c.get("/3.0/profiles", headers=self.basic),
            "gateway": lambda c: c.post(
                "/get-devices", headers={"Authorization": self.account_token}
            ),
        }


def settle(c: TestClient) -> None:
    """Wait until the limiter's leases are written: what a process sees between calls
    that are not simultaneous."""
    limiter = c.app.state.ctx.limiter  # type: ignore[attr-defined]
    wait_for(limiter.settled)


SHAPES: dict[str, Callable[[Any], bool]] = {
    "api": lambda b: b["statusCode"] == 429 and b["code"] == "rate_limit_exceeded",
    "v3": lambda b: b["result"] == "error" and b["desc"].startswith("Rate limit is exceeded"),
    "user": lambda b: b["result"] == "error" and b["code"] == "rate_limit_exceeded",
    "3.0": lambda b: b["head"]["status"] == 500 and "Rate limit" in b["head"]["message"],
    "gateway": lambda b: b == {"reason": "rate limit exceeded", "status": False},
}


def test_one_quota_over_every_surface_and_each_429_in_its_shape(
    limited: TestClient, db: Database
) -> None:
    caller = Caller(db, "Acme", "admin@acme.test")
    calls = caller.calls()
    seen = []
    for name in ["api", "v3", "user", "3.0", "gateway"]:  # 5 calls: the whole quota
        r = calls[name](limited)
        assert r.status_code == 200, (name, r.text)
        assert r.headers["X-RateLimit-Limit"] == "5"
        assert 1 <= int(r.headers["X-RateLimit-Reset"]) <= WINDOW
        seen.append(int(r.headers["X-RateLimit-Remaining"]))
        settle(limited)
    assert seen == [4, 3, 2, 1, 0]
    for name, call in calls.items():
        r = call(limited)
        assert r.status_code == 429, (name, r.text)
        assert SHAPES[name](r.json()), (name, r.text)
        assert 1 <= int(r.headers["Retry-After"]) <= WINDOW
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert r.headers["X-RateLimit-Limit"] == "5"
    other = Caller(db, "Other", "admin@other.test")  # another organization is not affected
    assert all(call(limited).status_code == 200 for call in other.calls().values())


def test_failed_credentials_are_limited_per_ip(limited: TestClient, db: Database) -> None:
    caller = Caller(db, "Acme", "admin@acme.test")
    bad = {"Authorization": "Token 00000000-0000-0000-0000-000000000000"}
    codes = [limited.post("/v3/balance", headers=bad).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    r = limited.post("/v3/balance", headers=bad)
    assert r.status_code == 429 and "Retry-After" in r.headers
    # every surface shares the address's budget
    assert limited.get("/api/me", headers={"Ocp-Apim-Subscription-Key": "x"}).status_code == 429
    assert limited.post("/send", headers={"Authorization": "nope"}).status_code == 429
    # a caller with valid credentials behind the same address still gets through
    assert limited.post("/v3/balance", headers=caller.org.token).status_code == 200


def test_gateway_otp_is_limited_per_ip(limited: TestClient, db: Database) -> None:
    caller = Caller(db, "Acme", "admin@acme.test")
    added = limited.post(
        "/add-device",
        headers={"Authorization": caller.account_token},
        data={"name": "Sales", "device": "6281234567001"},
    ).json()
    token = added["token"]
    first = limited.post("/delete-device", headers={"Authorization": token}).json()
    assert first["status"] is True  # the code is sent
    limited.post("/delete-device", headers={"Authorization": token}, data={"otp": "000000"})
    r = limited.post("/delete-device", headers={"Authorization": token}, data={"otp": "111111"})
    assert r.status_code == 429 and r.json() == {"reason": "rate limit exceeded", "status": False}


def test_quota_is_shared_by_separate_processes_within_a_lease(
    database_url: str, settings: Settings, db: Database
) -> None:
    """Two apps, each with its own engine and limiter (as two processes): together they
    let through at least the limit and at most the limit plus one credit each."""
    limit = 20
    tight = settings.model_copy(
        update={"rate_limit_requests": limit, "rate_limit_window_seconds": WINDOW}
    )
    caller = Caller(db, "Acme", "admin@acme.test")
    dbs = [Database(database_url), Database(database_url)]
    passed = 0
    try:
        with (
            TestClient(create_app(tight, db=dbs[0])) as a,
            TestClient(create_app(tight, db=dbs[1])) as b,
        ):
            for i in range(60):
                c = (a, b)[i % 2]
                passed += c.post("/v3/balance", headers=caller.org.token).status_code == 200
            settle(a)
            settle(b)
            assert a.post("/v3/balance", headers=caller.org.token).status_code == 429
            assert b.post("/v3/balance", headers=caller.org.token).status_code == 429
    finally:
        for d in dbs:
            d.dispose()
    assert limit <= passed <= limit + 2 * credit_for(limit)


def test_requests_do_not_write_the_counter_each(client: TestClient, org: Org, db: Database) -> None:
    """1,000 per window (the default lease is 20 calls): 100 calls make a handful of
    counter writes, not 100."""
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "rate_limit_counters" in statement and statement.lstrip().upper().startswith("INSERT"):
            writes.append(statement)

    limiter = client.app.state.ctx.limiter  # type: ignore[attr-defined]
    limiter.default_limit = 10_000  # the fixture's; lease 200
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(100):
            assert client.post("/v3/balance", headers=org.token).status_code == 200
        settle(client)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert 1 <= len(writes) <= 5
