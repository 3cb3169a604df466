"""Dead letters through the admin API, scoped to the caller's organization."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from omnirelay.db import Database
from omnirelay.queue import enqueue
from omnirelay.queue.worker import Worker
from tests.conftest import Org


def test_list_and_retry_dead_letters(
    client: TestClient, db: Database, worker: Worker, org: Org, make_org: Callable[..., Org]
) -> None:
    other = make_org("Other", "admin@other.test")
    with db.transaction() as session:
        mine = enqueue(session, "test.fail", {"mode": "permanent"}, organization_id=org.id).id
        theirs = enqueue(session, "test.fail", {"mode": "permanent"}, organization_id=other.id).id
    worker.run_until_idle()
    r = client.get("/api/jobs?status=dead", headers=org.headers())
    assert r.status_code == 200
    [item] = r.json()["items"]
    assert item["id"] == mine and item["status"] == "dead"
    assert item["lastError"] == "permanent failure: cannot ever work"
    r = client.post(f"/api/jobs/{theirs}/retry", headers=org.headers())
    assert r.status_code == 404 and r.json()["code"] == "dead_job_not_found"
    r = client.post(f"/api/jobs/{mine}/retry", headers=org.headers())
    assert r.status_code == 200 and r.json()["status"] == "todo" and r.json()["attempts"] == 0
    assert client.get("/api/jobs?status=dead", headers=org.headers()).json()["items"] == []
    r = client.post(f"/api/jobs/{mine}/retry", headers=org.headers())
    assert r.status_code == 404  # not dead any more
    r = client.get("/api/jobs?status=zombie", headers=org.headers())
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "status"
