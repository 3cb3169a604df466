"""Task handlers used by the queue tests, importable by worker subprocesses too."""

from __future__ import annotations

import os
import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from omnirelay.queue import JobContext, PermanentFailure, Retry, TaskRegistry

registry = TaskRegistry()
seen: list[tuple[str, dict[str, object]]] = []  # in-process record, in run order

CREATE_RUNS = "CREATE TABLE test_runs (job_id BIGINT, worker VARCHAR(100), attempts INTEGER)"


def record_run(session: Session, job: JobContext) -> None:
    session.execute(
        text("INSERT INTO test_runs (job_id, worker, attempts) VALUES (:j, :w, :a)"),
        {"j": job.id, "w": os.environ.get("TEST_WORKER_NAME", "main"), "a": job.attempts},
    )


@registry.task("test.note")
def note(session: Session, job: JobContext) -> None:
    seen.append((job.kind, job.payload))


@registry.task("test.record")
def record(session: Session, job: JobContext) -> None:
    record_run(session, job)
    time.sleep(float(str(job.payload.get("sleep", 0))))


@registry.task("test.block_in_child")
def block_in_child(session: Session, job: JobContext) -> None:
    if os.environ.get("TEST_BLOCK"):
        time.sleep(3600)  # the child is killed here, mid-job
    record_run(session, job)


@registry.task("test.fail")
def fail(session: Session, job: JobContext) -> None:
    record_run(session, job)  # rolled back with the failure
    mode = job.payload.get("mode")
    if mode == "retry-now":
        raise Retry(delay=0, reason="asked to retry")
    if mode == "permanent":
        raise PermanentFailure("cannot ever work")
    raise ValueError("boom")
