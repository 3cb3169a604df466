"""Fixtures of the Twilio telephony tests: the local Twilio peer (the adapter allowed onto
loopback), a profile whose telephony is that peer, and ``deliver``, which hands the
peer's signed status callbacks to omnirelay's /hooks as Twilio would POST them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from fastapi.testclient import TestClient

from omnirelay.callbacks import twilio
from omnirelay.config import Settings
from omnirelay.testing.twilio import Deliver, TwilioPeer
from omnirelay.webhooks.ssrf import parse_networks
from tests.callbacks.conftest import (  # noqa: F401  (shared fixtures)
    Account,
    admin,
    advance,
    api,
    call_row,
    drain,
    make_account,
)


@pytest.fixture
def frozen_clock() -> Iterator[time_machine.Coordinates]:
    """Unlike the sandbox engine's tests, these keep the real clock running: the peer's
    status callbacks and Retry-After waits take real time. ``api``/``admin`` still move
    it a millisecond a call, which a running clock takes as well."""
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        yield clock


LOOPBACK = parse_networks("127.0.0.0/8,::1/128")
PUBLIC_URL = "https://relay.example.test"
AGENT_LINE = "+74951110000"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_requests=10_000,
        webhook_allowed_networks="127.0.0.0/8,::1/128",
        public_url=PUBLIC_URL,
    )


@pytest.fixture
def peer() -> Iterator[TwilioPeer]:
    before = twilio.http.allowed_networks, twilio.public_url
    twilio.http.allowed_networks, twilio.public_url = LOOPBACK, PUBLIC_URL
    try:
        with TwilioPeer(lifetime=120) as p:
            yield p
    finally:
        twilio.http.allowed_networks, twilio.public_url = before


@pytest.fixture
def account(
    make_account: Callable[..., Account],  # noqa: F811  (the shared fixture)
    client: TestClient,
    peer: TwilioPeer,
) -> Account:
    """The call-back account, its profile's telephony the peer; agents are reached at
    the option's destination."""
    acc = make_account(telephony=peer.settings())
    r = client.patch(
        f"/api/callbacks/options/{acc.option}",
        json={"destination": AGENT_LINE},
        headers=acc.org.headers(),
    )
    assert r.status_code == 200, r.text
    return acc


@pytest.fixture
def deliver(client: TestClient) -> Deliver:
    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        assert url.startswith(PUBLIC_URL + "/hooks/twilio/"), url
        return client.post(url[len(PUBLIC_URL) :], content=body, headers=headers).status_code

    return post
