"""Queue semantics, through enqueue() and a Worker, on both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from omnirelay.db import Database, utcnow
from omnirelay.queue import JobContext, Retry, TaskRegistry, enqueue, get_job, list_jobs, retry_job
from omnirelay.queue.worker import Worker
from omnirelay.tenancy import service as tenancy
from tests.queue import tasks_for_tests
from tests.queue.conftest import runs


def _enqueue(db: Database, kind: str = "test.note", **kw: object) -> int:
    payload = kw.pop("payload", {})
    with db.transaction() as session:
        return enqueue(session, kind, payload, **kw).id  # type: ignore[arg-type]


def test_order_by_priority_then_run_at(db: Database, worker: Worker) -> None:
    now = utcnow()
    _enqueue(db, payload={"n": "late"}, run_at=now - timedelta(seconds=1))
    _enqueue(db, payload={"n": "early"}, run_at=now - timedelta(seconds=10))
    _enqueue(db, payload={"n": "urgent"}, run_at=now, priority=1)
    assert worker.run_until_idle() == 3
    assert [p["n"] for _, p in tasks_for_tests.seen] == ["urgent", "early", "late"]


def test_future_jobs_of_a_higher_priority_do_not_hold_back_due_ones(
    db: Database, worker: Worker
) -> None:
    now = utcnow()
    for i in range(50):  # a mass of ttl-like watches, due in an hour
        _enqueue(db, payload={"n": f"later{i}"}, run_at=now + timedelta(hours=1), priority=1)
    _enqueue(db, payload={"n": "due"}, run_at=now - timedelta(seconds=1))
    _enqueue(db, payload={"n": "urgent"}, run_at=now - timedelta(seconds=1), priority=1)
    assert worker.run_until_idle() == 2
    assert [p["n"] for _, p in tasks_for_tests.seen] == ["urgent", "due"]


def test_a_priority_outside_the_known_ones_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="priority"):
        _enqueue(db, priority=5)


def test_future_jobs_wait(db: Database, worker: Worker) -> None:
    job_id = _enqueue(db, run_at=utcnow() + timedelta(hours=1))
    assert worker.run_until_idle() == 0
    with db.transaction() as session:
        job = get_job(session, job_id)
        assert job is not None and job.status == "todo"


def test_job_rolls_back_with_its_transaction(db: Database, worker: Worker) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.transaction() as session:
        tenancy.create_organization(session, "Ghost", created_via="cli")
        enqueue(session, "test.note", {})
        raise Boom
    assert worker.run_until_idle() == 0


def test_dedupe_key_returns_the_waiting_job(db: Database, worker: Worker) -> None:
    first = _enqueue(db, dedupe_key="report:1")
    assert _enqueue(db, dedupe_key="report:1") == first
    assert worker.run_until_idle() == 1
    assert _enqueue(db, dedupe_key="report:1") != first  # done: a new one may start


def test_lock_serialises_jobs(db: Database, worker: Worker) -> None:
    a = _enqueue(db, payload={"n": 1}, lock="msg-1")
    _enqueue(db, payload={"n": 2}, lock="msg-1")
    c = _enqueue(db, payload={"n": 3}, lock="other")
    claimed = worker._claim(10)
    assert sorted(j.id for j in claimed) == [a, c]  # the second msg-1 job waits
    for job in claimed:
        worker._execute(job)
    assert worker.run_until_idle() == 1
    assert [p["n"] for _, p in tasks_for_tests.seen] == [1, 3, 2]


def test_failure_retries_with_backoff(db: Database, worker: Worker) -> None:
    job_id = _enqueue(db, "test.fail")
    before = utcnow()
    assert worker.run_until_idle() == 1
    with db.transaction() as session:
        job = get_job(session, job_id)
        assert job is not None
        assert job.status == "todo" and job.attempts == 1
        assert job.last_error == "ValueError: boom"
        assert job.run_at >= before + timedelta(seconds=30)  # backoff_base 60, half jitter
    assert runs(db) == []  # the handler's write was rolled back


def test_retry_now_and_dead_after_max_attempts(db: Database, worker: Worker) -> None:
    job_id = _enqueue(db, "test.fail", payload={"mode": "retry-now"}, max_attempts=3)
    assert worker.run_until_idle() == 3
    with db.transaction() as session:
        job = get_job(session, job_id)
        assert job is not None and job.status == "dead" and job.attempts == 3
        assert job.last_error == "asked to retry"


def test_permanent_failure_goes_straight_to_dead(db: Database, worker: Worker) -> None:
    job_id = _enqueue(db, "test.fail", payload={"mode": "permanent"})
    assert worker.run_until_idle() == 1
    with db.transaction() as session:
        job = get_job(session, job_id)
        assert job is not None and job.status == "dead" and job.attempts == 1


def test_unknown_kind_is_retried_not_dropped(db: Database, worker: Worker) -> None:
    job_id = _enqueue(db, "test.nobody_handles_this")
    worker.run_until_idle()
    with db.transaction() as session:
        job = get_job(session, job_id)
        assert job is not None and job.status == "todo"
        assert "no handler" in (job.last_error or "")


def test_dead_letters_listed_and_retried_per_organization(db: Database, worker: Worker) -> None:
    mine = _enqueue(db, "test.fail", payload={"mode": "permanent"}, organization_id="org-a")
    theirs = _enqueue(db, "test.fail", payload={"mode": "permanent"}, organization_id="org-b")
    worker.run_until_idle()
    with db.transaction() as session:
        assert [j.id for j in list_jobs(session, status="dead", organization_id="org-a")] == [mine]
        assert {j.id for j in list_jobs(session, status="dead")} == {mine, theirs}
        assert retry_job(session, theirs, organization_id="org-a") is None  # not ours
        assert get_job(session, theirs, organization_id="org-a") is None
        revived = retry_job(session, mine, organization_id="org-a")
        assert revived is not None and revived.status == "todo" and revived.attempts == 0
    assert worker.run_until_idle() == 1  # runs again (and dies again)
    with db.transaction() as session:
        job = get_job(session, theirs)
        assert job is not None and job.status == "dead"


def test_completed_jobs_leave_the_table(db: Database, worker: Worker) -> None:
    job_id = _enqueue(db, "test.record")
    assert worker.run_until_idle() == 1
    with db.transaction() as session:
        assert get_job(session, job_id) is None
    assert runs(db) == [(job_id, "main", 1)]


# Registered here, not in tasks_for_tests: worker subprocesses import that module.
io_registry = TaskRegistry()


@io_registry.io_task("test.io")
def io(db: Database, job: JobContext) -> None:
    """An I/O job: no connection of the worker's is checked out around it, and what it
    writes in its own transaction stays even when it then asks to be retried."""
    pool = db.engine.pool
    held = pool.checkedout() if isinstance(pool, QueuePool) else 0
    with db.transaction() as session:
        session.execute(
            text("INSERT INTO test_runs (job_id, worker, attempts) VALUES (:j, :w, :a)"),
            {"j": job.id, "w": f"held={held}", "a": job.attempts},
        )
    if job.attempts < 2:
        raise Retry(delay=0, reason="the provider was down")


def test_an_io_job_runs_with_no_transaction_open(db: Database, runs_table: None) -> None:
    worker = Worker(db, io_registry, backoff_base=60, lease_seconds=30)
    with db.transaction() as session:
        job = enqueue(session, "test.io", {})
    assert worker.run_until_idle() == 2  # a retry, then done
    # Both attempts' writes committed (a plain job's would roll back with its retry).
    assert runs(db) == [(job.id, "held=0", 1), (job.id, "held=0", 2)]
    with db.transaction() as session:
        assert get_job(session, job.id) is None
