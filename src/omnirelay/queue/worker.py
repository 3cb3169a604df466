"""The worker: claims due jobs, runs their handlers on a thread pool, records retries.

A handler runs in one transaction that also deletes its job, guarded by the lease, so
its writes and the job's completion commit together, or not at all.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError

from omnirelay.db import Database, utcnow
from omnirelay.drain import IDLE_INTERVAL, Idle
from omnirelay.queue import repository as repo
from omnirelay.queue.models import Job
from omnirelay.queue.registry import JobContext, PermanentFailure, Retry, TaskRegistry
from omnirelay.queue.service import NOTIFY_CHANNEL
from omnirelay.wakeup import Listener

log = logging.getLogger(__name__)


class _LeaseLost(Exception):
    pass


class Worker:
    def __init__(
        self,
        db: Database,
        registry: TaskRegistry,
        *,
        concurrency: int = 4,
        lease_seconds: float = 300.0,
        poll_interval: float = 5.0,
        idle_interval: float = IDLE_INTERVAL,
        backoff_base: float = 2.0,
        backoff_max: float = 3600.0,
        worker_id: str | None = None,
        prefetch: int | None = None,
        batch_size: int = 200,
    ) -> None:
        self.db = db
        self.registry = registry
        self.concurrency = concurrency
        # Claim more than the threads can run at once: one claim transaction then feeds
        # several jobs, which matters most on SQLite where every transaction takes the
        # write lock. Claimed jobs waiting for a thread keep their lease by heartbeat.
        self.prefetch = max(prefetch or concurrency * 4, concurrency)
        # Jobs of database-only kinds run up to this many to a transaction (ADR 18);
        # a larger prefetch feeds them.
        self.batch_size = batch_size
        if prefetch is None:
            self.prefetch = max(self.prefetch, batch_size)
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        # Idle, the claimer polls less and less often (a wake-up or work resets it):
        # a commit that enqueues wakes it, the poll is only a safety net (ADR 34).
        self._idle = Idle(poll_interval, idle_interval)
        self.claims = 0  # claim transactions, for diagnostics
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._listener: Listener | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="job")
        self._listener = Listener(self.db, NOTIFY_CHANNEL, self._wake.set).start()
        for target, name in ((self._loop, "job-claimer"), (self._heartbeat, "job-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; jobs already running finish (or their lease lapses)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._listener is not None:
            self._listener.stop()

    def run_forever(self) -> None:
        self.start()
        self._stop.wait()
        self.stop()

    def run_until_idle(self, max_jobs: int | None = None) -> int:
        """Run due jobs in this thread until none is due; for tests and one-off drains."""
        ran = 0
        while max_jobs is None or ran < max_jobs:
            want = self.prefetch if max_jobs is None else min(self.prefetch, max_jobs - ran)
            jobs = self._claim(want)
            if not jobs:
                return ran
            together = [j for j in jobs if self.registry.batched(j.kind)]
            if together:
                self._execute_batch(together)
            for job in jobs:
                if not self.registry.batched(job.kind):
                    self._execute(job)
            ran += len(jobs)
        return ran

    # --- claiming ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before claiming, so a wake-up during the claim counts
            free = self.prefetch - len(self._running)
            sleep = self.poll_interval
            if free > 0:
                try:
                    jobs = self._claim(free)
                except Exception:
                    log.exception("claiming jobs failed")
                    jobs = []
                assert self._pool is not None
                together = [j for j in jobs if self.registry.batched(j.kind)]
                with self._lock:
                    self._running.update(j.id for j in jobs)
                for start in range(0, len(together), self.batch_size):
                    self._pool.submit(self._run_batch, together[start : start + self.batch_size])
                for job in jobs:
                    if not self.registry.batched(job.kind):
                        self._pool.submit(self._run, job)
                if jobs:
                    self._idle.worked()
                if len(jobs) == free:
                    continue
                sleep = self._until_next_due()
            if self._wake.wait(sleep):
                self._idle.worked()

    def _claim(self, limit: int) -> list[Job]:
        self.claims += 1
        for _ in range(5):
            try:
                with self.db.transaction() as session:
                    return repo.claim(
                        session,
                        self.id,
                        limit=limit,
                        lease_seconds=self.lease_seconds,
                        now=utcnow(),
                    )
            except IntegrityError:
                # Two workers raced for jobs sharing a lock; the unique index said no.
                continue
        return []

    def _until_next_due(self) -> float:
        try:
            with self.db.read() as session:  # a read: no write lock on SQLite
                next_at = repo.next_run_at(session)
        except OperationalError:
            return self._idle.timeout()
        if next_at is None:
            return self._idle.timeout()
        wait = (next_at - utcnow()).total_seconds()
        # Due but not claimable (locked behind another job): wait for a wake-up.
        return self._idle.timeout(wait if wait > 0 else None)

    def _heartbeat(self) -> None:
        """Extend the leases of running jobs, so only a dead worker's jobs are reclaimed."""
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                running = list(self._running)
            if not running:
                continue
            try:
                with self.db.transaction() as session:
                    until = utcnow() + timedelta(seconds=self.lease_seconds)
                    repo.renew(session, self.id, running, until)
            except Exception:
                log.exception("renewing job leases failed")

    # --- running one job ---------------------------------------------------------------

    def _run(self, job: Job) -> None:
        try:
            self._execute(job)
        finally:
            with self._lock:
                self._running.discard(job.id)
            self._wake.set()

    def _execute(self, job: Job) -> None:
        ctx = _context(job)
        handler = self.registry.get(job.kind)
        started = time.perf_counter()
        try:
            io = self.registry.get_io(job.kind) if handler is None else None
            if handler is None and io is None:
                # Perhaps a newer worker knows it: retry rather than drop.
                raise RuntimeError(f"no handler for job kind {job.kind!r}")
            if io is not None:
                io(self.db, ctx)  # its own short transactions, none open around its I/O
                with self.db.transaction() as session:
                    if not repo.complete(session, job.id, self.id):
                        raise _LeaseLost
            else:
                assert handler is not None
                with self.db.transaction() as session:
                    handler(session, ctx)
                    if not repo.complete(session, job.id, self.id):
                        raise _LeaseLost
        except _LeaseLost:
            log.warning("job %s: lease lost; its writes were rolled back", job.id)
            return
        except Retry as exc:
            delay = exc.delay if exc.delay is not None else self._backoff(job.attempts)
            self._fail(job, exc.reason or "retry requested", self._at(delay))
        except PermanentFailure as exc:
            self._fail(job, f"permanent failure: {exc}", None)
        except Exception as exc:
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc, exc_info=True)
            retry_at = self._at(self._backoff(job.attempts))
            self._fail(job, f"{type(exc).__name__}: {exc}", retry_at)
        else:
            log.debug("job %s (%s) done in %.3f s", job.id, job.kind, time.perf_counter() - started)

    def _run_batch(self, jobs: list[Job]) -> None:
        try:
            self._execute_batch(jobs)
        finally:
            with self._lock:
                self._running.difference_update(j.id for j in jobs)
            self._wake.set()

    def _execute_batch(self, jobs: list[Job]) -> None:
        """Database-only jobs in one transaction, each in a savepoint: a job that fails
        rolls back only its own writes and is retried (or dead-lettered) as it would be
        alone; the finished ones are deleted together with what they wrote."""
        failures: list[tuple[Job, str, datetime | None]] = []
        by_id = {j.id: j for j in jobs}
        try:
            with self.db.transaction() as session:
                failed: set[int] = set()

                def one(ctx: JobContext) -> None:
                    job = by_id[ctx.id]
                    handler = self.registry.get(job.kind)
                    assert handler is not None
                    try:
                        with session.begin_nested():
                            handler(session, ctx)
                    except Retry as exc:
                        delay = exc.delay if exc.delay is not None else self._backoff(job.attempts)
                        failures.append((job, exc.reason or "retry requested", self._at(delay)))
                        failed.add(job.id)
                    except PermanentFailure as exc:
                        failures.append((job, f"permanent failure: {exc}", None))
                        failed.add(job.id)
                    except Exception as exc:
                        log.warning("job %s (%s) failed: %s", job.id, job.kind, exc, exc_info=True)
                        again = self._at(self._backoff(job.attempts))
                        failures.append((job, f"{type(exc).__name__}: {exc}", again))
                        failed.add(job.id)

                kinds: dict[str, list[JobContext]] = {}
                for job in jobs:
                    kinds.setdefault(job.kind, []).append(_context(job))
                for kind, contexts in kinds.items():
                    batch = self.registry.get_batch(kind)
                    if batch is not None:
                        batch(session, contexts, one)
                    else:
                        for ctx in contexts:
                            one(ctx)
                done = [j.id for j in jobs if j.id not in failed]
                lost = len(done) - repo.complete_many(session, done, self.id)
                if lost:
                    raise _LeaseLost
                now = utcnow()
                for job, error, at in failures:
                    if at is not None and job.attempts >= job.max_attempts:
                        at = None  # attempts spent: dead letter
                    repo.fail(session, job.id, self.id, error=error, retry_at=at, now=now)
        except _LeaseLost:
            # Another worker took some of them over: roll the batch back, run each alone.
            log.warning("a batch of %d jobs lost a lease; running them one by one", len(jobs))
            for job in jobs:
                self._execute(job)
        except Exception:
            log.exception("a batch of %d jobs failed; running them one by one", len(jobs))
            for job in jobs:
                self._execute(job)

    def _fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        if retry_at is not None and job.attempts >= job.max_attempts:
            retry_at = None  # attempts spent: dead letter
        with self.db.transaction() as session:
            repo.fail(session, job.id, self.id, error=error, retry_at=retry_at, now=utcnow())

    def _backoff(self, attempts: int) -> float:
        delay: float = min(self.backoff_max, self.backoff_base * 2.0 ** max(0, attempts - 1))
        return delay / 2 + random.uniform(0, delay / 2)  # jitter spreads retries out

    @staticmethod
    def _at(delay: float) -> datetime:
        return utcnow() + timedelta(seconds=max(0.0, delay))


def _context(job: Job) -> JobContext:
    return JobContext(
        id=job.id,
        kind=job.kind,
        payload=job.payload,
        attempts=job.attempts,
        organization_id=job.organization_id,
        run_at=job.run_at,
    )
