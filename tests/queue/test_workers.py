"""Workers as real threads and processes: wake-ups, a killed worker, two workers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from omnirelay.db import Database
from omnirelay.queue import enqueue, get_job
from omnirelay.queue.worker import Worker
from tests.queue import tasks_for_tests
from tests.queue.conftest import runs
from tests.webhooks.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import sys
    from omnirelay.db import Database
    from omnirelay.queue.worker import Worker
    from tests.queue import tasks_for_tests
    Worker(Database(sys.argv[1]), tasks_for_tests.registry, concurrency=int(sys.argv[2]),
           lease_seconds=float(sys.argv[3]), poll_interval=0.2).run_forever()
    """
)


def _child(
    url: str, *, concurrency: int, lease: float, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(concurrency), str(lease)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
    )


def test_notification_wakes_an_idle_worker(db: Database, runs_table: None) -> None:
    w = Worker(db, tasks_for_tests.registry, poll_interval=60)  # would sleep a minute
    w.start()
    try:
        time.sleep(0.3)  # let it go idle
        with db.transaction() as session:
            job_id = enqueue(session, "test.record", {}).id
        wait_for(lambda: runs(db), timeout=10)
    finally:
        w.stop()
    assert runs(db) == [(job_id, "main", 1)]


def test_killed_worker_job_is_claimed_again_after_its_lease(
    db: Database, database_url: str, runs_table: None
) -> None:
    with db.transaction() as session:
        job_id = enqueue(session, "test.block_in_child", {}).id
    child = _child(database_url, concurrency=1, lease=1.0, env={"TEST_BLOCK": "1"})
    try:

        def started() -> bool:
            # A child that died (rather than one that is slow to start) fails at once, with
            # its exit code; its stderr is the test's.
            assert child.poll() is None, f"worker child exited with {child.returncode}"
            with db.read() as session:
                job = get_job(session, job_id)
                return job is not None and job.status == "doing"

        wait_for(started, timeout=60)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    w = Worker(db, tasks_for_tests.registry, lease_seconds=30)
    wait_for(lambda: w.run_until_idle() == 1, timeout=10)  # once the 1 s lease lapses
    assert runs(db) == [(job_id, "main", 2)]  # second attempt, by the survivor


def test_two_worker_processes_never_run_a_job_twice(
    db: Database, database_url: str, runs_table: None
) -> None:
    # PostgreSQL is the multi-process engine; on SQLite the file lock serialises claims,
    # and the same guarantee must hold.
    n = 300
    with db.transaction() as session:
        ids = [enqueue(session, "test.record", {"sleep": 0.005}).id for _ in range(n)]
    children = [
        _child(database_url, concurrency=4, lease=30, env={"TEST_WORKER_NAME": name})
        for name in ("w1", "w2")
    ]
    try:
        wait_for(lambda: len(runs(db)) >= n, timeout=120, every=0.2)
        time.sleep(0.5)  # a double run would show up now
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(30)
    done = runs(db)
    assert sorted(r[0] for r in done) == sorted(ids)  # each job exactly once
    assert {r[1] for r in done} == {"w1", "w2"}  # and both workers took part
