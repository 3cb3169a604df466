"""Bulk import: as a job through /user/contacts/import, and from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnirelay.contacts import importer
from omnirelay.db import Database
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from tests.conftest import Org
from tests.platform.conftest import Call

CSV = (
    "phone,vkId,City,Birthday\n"
    "79990000041,41,Moscow,1990-01-02\n"
    "79990000042,,Kazan,\n"
    "12,,Nowhere,\n"  # refused: not a phone number
    "79990000043,,Omsk,31.02.2001\n"  # refused: no such date
    "+7 999 000-00-41,,Tver,\n"  # the first row's phone: merged into it
)


def _drain(db: Database) -> None:
    worker = Worker(db, tasks, backoff_base=0.01, backoff_max=0.01, lease_seconds=30)
    while worker.run_until_idle(max_jobs=1000):
        pass


def test_import_job_reports_progress_and_summary(call: Call, db: Database) -> None:
    call("/contacts/create", [{"phone": "79990000042", "telegramId": 7}])  # exists already
    started = call("/contacts/import", {"format": "csv", "data": CSV})
    status = call("/contacts/importStatus", {"id": started["id"]})
    assert status["status"] == "queued" and status["rows"] == 5 and status["processed"] == 0
    _drain(db)
    status = call("/contacts/importStatus", {"id": started["id"]})
    assert status["status"] == "done" and status["processed"] == 5
    assert (status["created"], status["merged"], status["refused"]) == (1, 2, 2)
    assert [e["line"] for e in status["errors"]] == [4, 5]
    assert "Tel.number" in status["errors"][0]["reason"]
    assert "DATE" in status["errors"][1]["reason"]
    listed = {c["phone"]: c for c in call("/contacts", {})["data"]}
    assert set(listed) == {"+79990000041", "+79990000042"}
    first = {v["name"]: v["value"] for v in listed["+79990000041"]["variables"]}
    assert first == {"City": "Tver", "Birthday": "1990-01-02"}  # the later row's value
    assert listed["+79990000042"]["telegramId"] == 7  # filled in, not replaced


def test_import_job_goes_batch_by_batch(
    call: Call, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH", 2)
    lines = [json.dumps({"phone": f"7999000010{i}", "City": "Ufa"}) for i in range(5)]
    lines.insert(2, "not json")
    started = call("/contacts/import", {"format": "jsonl", "data": "\n".join(lines)})
    worker = Worker(db, tasks, backoff_base=0.01, backoff_max=0.01, lease_seconds=30)
    assert worker.run_until_idle(max_jobs=1) == 1
    status = call("/contacts/importStatus", {"id": started["id"]})
    assert status["status"] == "running" and status["processed"] == 2  # committed so far
    _drain(db)
    status = call("/contacts/importStatus", {"id": started["id"]})
    assert (status["processed"], status["created"], status["refused"]) == (6, 5, 1)
    assert call("/contacts", {})["total"] == 5


def test_import_refusals(call: Call, make_org: Callable[..., Org]) -> None:
    bad = call("/contacts/import", {"format": "xml", "data": "x"}, error=True)
    assert bad["field"] == "format"
    assert call("/contacts/import", {"format": "csv", "data": ""}, error=True)["field"] == "data"
    other = make_org("Other", "admin@other.test")
    theirs = call("/contacts/import", {"format": "csv", "data": CSV}, who=other)["id"]
    missing = call("/contacts/importStatus", {"id": theirs}, error=True)
    assert missing["code"] == "import_not_found"


def test_cli_import(client: TestClient, org: Org, database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    env = {**os.environ, "OMNIRELAY_DATABASE_URL": database_url}
    r = subprocess.run(
        [sys.executable, "-m", "omnirelay", "contacts", "import", str(path), "--org", org.id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "rows 5: created 2, merged 1, refused 2" in r.stdout
    assert "line 4: Tel.number error" in r.stdout
    listed = client.post("/user/contacts", json={}, headers=org.token).json()
    assert listed["total"] == 2
    wrong = subprocess.run(
        [sys.executable, "-m", "omnirelay", "contacts", "import", str(path), "--org", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode != 0 and "no organization" in wrong.stderr
