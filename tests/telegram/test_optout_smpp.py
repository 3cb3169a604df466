"""Opt-out over SMS: an MO ``STOP`` from an SMSC (a real SMPP session against the local
SMSC) blocks the number; ``START`` lifts it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.db import Database
from omnirelay.messaging.models import InboundMessage
from omnirelay.testing.smsc import Smsc
from tests.conftest import Org
from tests.smpp import conftest as smpp

PHONE = smpp.PHONE
settings = smpp.settings
connect = smpp.connect
manager = smpp.manager
pump = smpp.pump
send = smpp.send
status = smpp.status


@pytest.fixture
def org(make_org: Callable[..., Org]) -> Org:
    return make_org()


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as s:
        yield s


def _blocked(client: TestClient, org: Org) -> list[dict[str, Any]]:
    return list(client.get("/api/blocklist/phones", headers=org.headers()).json()["items"])


def test_an_sms_stop_blocks_the_number_and_start_lifts_it(
    smsc: Smsc,
    connect: Callable[..., int],
    manager: Any,
    send: Callable[..., str],
    pump: Callable[..., Any],
    status: Callable[[str], str],
    client: TestClient,
    org: Org,
    db: Database,
) -> None:
    connect(smsc.port)
    mid = send("Sale today")
    pump(lambda: status(mid) == "delivered")

    def inbound(n: int) -> bool:
        with db.read() as session:
            return len(session.scalars(select(InboundMessage.id)).all()) >= n

    smsc.mo(PHONE, "ACME", "Stop")  # the test SMSC sends GSM 7-bit: Latin keywords
    pump(lambda: inbound(1))
    (entry,) = _blocked(client, org)
    assert (entry["phone"], entry["via"]) == (PHONE, "sms")
    r = client.post(
        "/v3/message/sendSMS",
        json={"sender": "ACME", "phone": PHONE, "text": "again"},
        headers=org.token,
    )
    assert r.status_code == 400 and r.json()["code"] == 1019, r.text
    smsc.mo(PHONE, "ACME", "start")
    pump(lambda: inbound(2))
    assert _blocked(client, org) == []
    assert send("welcome back")
