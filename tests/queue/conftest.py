from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from omnirelay.db import Database
from omnirelay.queue.worker import Worker
from tests.queue import tasks_for_tests


@pytest.fixture
def runs_table(db: Database) -> None:
    with db.transaction() as session:
        session.execute(text(tasks_for_tests.CREATE_RUNS))


@pytest.fixture
def worker(db: Database, runs_table: None) -> Iterator[Worker]:
    tasks_for_tests.seen.clear()
    yield Worker(db, tasks_for_tests.registry, backoff_base=60, lease_seconds=30)


def runs(db: Database) -> list[tuple[int, str, int]]:
    with db.transaction() as session:
        rows = session.execute(text("SELECT job_id, worker, attempts FROM test_runs ORDER BY 1"))
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]
