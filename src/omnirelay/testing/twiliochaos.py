"""The chaos benchmark's fault for call-back telephony (issue 16): n call-backs placed
through /3.0 against the Twilio peer, which drops connections and answers Twilio's 500
at random (creates and bridges alike); the peer's signed status callbacks come back
through /hooks/twilio. Every call-back must get its customer called exactly once and
reach ``connected`` (the agent bridged): none lost, none rung twice.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from omnirelay.app import create_app
from omnirelay.callbacks import twilio
from omnirelay.callbacks.models import Call
from omnirelay.config import Settings
from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.messaging.dispatch import DispatchStep
from omnirelay.net.ssrf import parse_networks
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.httppeer import Chaos
from omnirelay.testing.twilio import TwilioPeer

PUBLIC_URL = "https://relay.example.test"
ALL_WEEK = [{"status": "active", "day_of_week": list(range(7)),
             "start_time": ["00:00"], "end_time": ["23:59"]}]  # fmt: skip


def _account(client: TestClient, db: Database, peer: TwilioPeer, agents: int) -> dict[str, Any]:
    with db.transaction() as session:
        made = tenancy.create_organization(
            session, "Calls", admin_email="admin@calls.test", admin_name="A", created_via="cli"
        )
    assert made.access_token is not None
    api = {
        "Ocp-Apim-Subscription-Key": made.subscription_keys["primary"],
        "Authorization": made.access_token,
    }
    telephony = peer.settings()
    body = {"name": "Support", "timezone": "UTC", "entries": ALL_WEEK, "telephony": telephony}
    r = client.post("/api/callbacks/profiles", json=body, headers=api)
    assert r.status_code == 201, r.text
    profile = r.json()["sid"]
    r = client.post(
        f"/api/callbacks/profiles/{profile}/options",
        json={"name": "Sales", "position": 1},
        headers=api,
    )
    assert r.status_code == 201, r.text
    option = r.json()["sid"]
    r = client.patch(
        f"/api/callbacks/options/{option}", json={"destination": "+74951110000"}, headers=api
    )
    assert r.status_code == 200, r.text
    for k in range(agents):
        r = client.post(f"/api/callbacks/options/{option}/agents", json={"name": f"A{k}"},
                        headers=api)  # fmt: skip
        assert r.status_code == 201, r.text
    sid, token = made.credentials["account_sid"], made.credentials["auth_token"]
    basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
    return {"option": option, "basic": {"Authorization": "Basic " + basic}}


def run(db: Database, n: int, *, seed: int, share: float, wait: float) -> bool:
    before = twilio.http.allowed_networks, twilio.public_url
    twilio.http.allowed_networks = parse_networks("127.0.0.0/8")
    twilio.public_url = PUBLIC_URL
    settings = Settings(database_url=db.url, rate_limit_requests=10**9, public_url=PUBLIC_URL)
    try:
        with TwilioPeer(lifetime=3600) as peer, TestClient(create_app(settings, db=db)) as client:
            account = _account(client, db, peer, n)
            sids = []
            for i in range(n):
                r = client.post(
                    "/3.0/callback",
                    data={"fc_number": f"7916{i:07d}", "fc_option": account["option"]},
                    headers=account["basic"],
                )
                assert r.status_code == 200 and r.json()["head"]["status"] == 200, r.text
                sids.append(r.json()["data"]["sid"])
            chaos = peer.chaos = Chaos(share / 2, share / 2, seed)

            def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
                path = url.removeprefix(PUBLIC_URL)
                return int(client.post(path, content=body, headers=headers).status_code)

            worker = Worker(db, tasks, poll_interval=0.1)
            drain = Drain(db, DispatchStep(), batch=64, poll_interval=0.05)  # call-back SMS
            worker.start()
            drain.start()
            started = time.monotonic()
            try:
                while time.monotonic() - started < wait:
                    peer.drive(deliver)
                    statuses = _statuses(db, sids)
                    if (
                        statuses.get("connected", 0)
                        + sum(c for s, c in statuses.items() if s in ("completed", "failed"))
                        == n
                    ):
                        break
                    time.sleep(0.2)
            finally:
                worker.stop()
                drain.stop()
            took = time.monotonic() - started
            statuses = _statuses(db, sids)
            per_number = Counter(c.to for c in peer.creates())
            twice = sum(1 for k in per_number.values() if k > 1)
            lost = n - statuses.get("connected", 0)
            print(
                f"   {'twilio':<14} call-backs {n:>4}  connected {statuses.get('connected', 0):>4}"
                f"  customers called {len(per_number)} ({twice} twice)  faults: "
                f"{chaos.dropped} dropped, {chaos.errors} x 500  statuses {statuses}  "
                f"LOST {lost}  ({took:.1f} s)"
            )
            return lost == 0 and twice == 0
    finally:
        twilio.http.allowed_networks, twilio.public_url = before


def _statuses(db: Database, sids: list[str]) -> dict[str, int]:
    with db.read() as session:
        rows = session.scalars(select(Call.status).where(Call.sid.in_(sids)))
        return dict(Counter(rows))
