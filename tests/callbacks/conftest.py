"""Fixtures of the call-back tests: the /3.0 client with HTTP Basic, a configured profile
(built through the admin API), a synchronous worker and a clock that jumps."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient

import omnirelay.tasks  # noqa: F401  (registers the engine's handlers)
from omnirelay.callbacks.models import Call
from omnirelay.db import Database
from omnirelay.tenancy import service as tenancy
from tests.conftest import Org
from tests.pipeline import Pipeline, jump

ALL_WEEK = [
    {
        "status": "active",
        "day_of_week": [0, 1, 2, 3, 4, 5, 6],
        "start_time": ["00:00"],
        "end_time": ["23:59"],
    }
]
ANSWERS, BUSY, NO_ANSWER, HANGS_UP = "79161234567", "79160000001", "79160000002", "79160000003"


@dataclass
class Account:
    org: Org
    account_sid: str
    auth_token: str
    profile: str = ""
    option: str = ""

    @property
    def basic(self) -> dict[str, str]:
        raw = f"{self.account_sid}:{self.auth_token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def make_account(db: Database, client: TestClient) -> Callable[..., Account]:
    def make(name: str = "Acme", email: str = "admin@acme.test", **profile: Any) -> Account:
        with db.transaction() as session:
            created = tenancy.create_organization(
                session, name, admin_email=email, admin_name="Admin", created_via="cli"
            )
        assert created.admin is not None and created.access_token is not None
        org = Org(
            created.organization.id,
            dict(created.subscription_keys),
            created.access_token,
            created.admin.id,
            created.api_token,
        )
        account = Account(
            org, created.credentials["account_sid"], created.credentials["auth_token"]
        )
        body = {
            "name": "Support",
            "timezone": "Europe/Moscow",
            "sms": True,
            "questions": True,
            "scheduling": True,
            "entries": ALL_WEEK,
            "retry_attempts": 2,
            "retry_interval": 60,
            "telephony": {"ring_delay": 5, "bridge_delay": 1, "talk_time": 120},
            **profile,
        }
        r = client.post("/api/callbacks/profiles", json=body, headers=org.headers())
        assert r.status_code == 201, r.text
        account.profile = r.json()["sid"]
        r = client.post(
            f"/api/callbacks/profiles/{account.profile}/options",
            json={"name": "Sales", "position": 1},
            headers=org.headers(),
        )
        assert r.status_code == 201, r.text
        account.option = r.json()["sid"]
        return account

    return make


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()


@pytest.fixture
def api(
    client: TestClient, account: Account, frozen_clock: time_machine.Coordinates
) -> Callable[..., Any]:
    """Call /3.0 with the account's Basic credentials: ``api("GET", "/profiles")``."""

    def call(method: str, path: str, **kw: Any) -> Any:
        frozen_clock.shift(0.001)
        return client.request(
            method, f"/3.0{path}", headers={**account.basic, **kw.pop("headers", {})}, **kw
        )

    return call


@pytest.fixture
def admin(
    client: TestClient, account: Account, frozen_clock: time_machine.Coordinates
) -> Callable[..., Any]:
    def call(method: str, path: str, **kw: Any) -> Any:
        frozen_clock.shift(0.001)
        return client.request(method, f"/api/callbacks{path}", headers=account.org.headers(), **kw)

    return call


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Coordinates]:
    """The wall clock stands still in a call-back test: the engine's delays (a hang-up
    0.5 s after answering, a bridge after 1 s) are due when ``tick`` says, however long the
    machine takes between two steps (a loaded machine made the 1-second margins flaky).
    Each API call moves it by a millisecond, so requests keep their order in time.
    A test with a live webhook deliverer keeps the real clock: its retries wait real
    seconds."""
    tick = "deliverer" in request.fixturenames
    with time_machine.travel(datetime.now(UTC), tick=tick) as clock:
        yield clock


@pytest.fixture
def drain(db: Database) -> Callable[[], int]:
    return Pipeline(db).run_until_idle


@pytest.fixture
def advance(db: Database) -> Callable[[float], None]:
    """The clock jumps forward for the queue: due times move back by ``seconds``."""
    return lambda seconds: jump(db, seconds)


@pytest.fixture
def call_row(db: Database) -> Callable[[str], Call]:
    def get(sid: str) -> Call:
        with db.transaction() as session:
            row = session.get(Call, sid)
            assert row is not None
            session.expunge(row)
            return row

    return get
