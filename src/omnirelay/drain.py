"""The drain engine: claim a batch of due rows in one statement, do its I/O with no
transaction open, record the whole batch's outcomes in one transaction (ADR 18).

A :class:`Step` says what one drain does; :class:`Drain` runs it on a thread, woken by a
commit that made rows due (``wakeup.notify`` on the step's channel: NOTIFY on
PostgreSQL, in-process on SQLite) or, failing that, when the next row falls due or by a
poll. The poll is only a safety net (a commit of another SQLite process, a lost
notification), so an idle drain backs it off (:class:`Idle`): from ``poll_interval``,
doubling after each claim that found nothing, up to ``idle_interval`` (ADR 34). A batch
whose process dies between its claim and its record is claimed again when its lease has
passed: at-least-once, never lost.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from omnirelay.db import Database, utcnow
from omnirelay.wakeup import Listener

log = logging.getLogger(__name__)

B = TypeVar("B")  # a claimed batch, as the step describes it


class Step(Protocol[B]):
    """One drain's work. ``claim`` and ``record`` run in write transactions the engine
    opens; ``io`` runs with none open (provider calls, HTTP, DNS)."""

    name: str
    channel: str | None  # wake-up channel, or None to rely on polling

    def claim(self, session: Session, claim_id: str, limit: int, now: datetime) -> B | None:
        """Lease up to ``limit`` due rows to ``claim_id`` (until ``now`` + the lease) and
        prepare their I/O; None or an empty batch when nothing is due."""
        ...

    def size(self, batch: B) -> int: ...

    def io(self, batch: B) -> Any:
        """The batch's I/O; its outcomes, handed to ``record`` (None: nothing to record,
        the claim did it all). Must not raise for one row's failure: that row's outcome
        says it."""
        ...

    def record(self, session: Session, batch: B, outcomes: Any, claim_id: str) -> None:
        """Write every outcome of the batch, for the rows still leased to ``claim_id``."""
        ...

    def next_due(self, session: Session) -> datetime | None:
        """When the earliest row not yet due falls due (to sleep until then)."""
        ...


IDLE_INTERVAL = 2.0  # seconds: the longest an idle poller sleeps between polls


class Idle:
    """The poll interval of one idle poller: ``poll_interval`` after work, doubled after
    each poll that found nothing, never above ``idle_interval``; and never past the next
    due row, so scheduled work is not late. Every poller of a process (drains, the job
    worker, the SMPP sessions, the webhook deliverer) sleeps by one of these."""

    def __init__(self, poll_interval: float, idle_interval: float = IDLE_INTERVAL) -> None:
        self.poll_interval = poll_interval
        self.idle_interval = max(poll_interval, idle_interval)
        self.current = poll_interval

    def worked(self) -> None:
        """Work was found, or a wake-up came: poll at the short interval again."""
        self.current = self.poll_interval

    def timeout(self, due_in: float | None = None) -> float:
        """How long to sleep after a poll that found nothing; ``due_in``: seconds until
        the next row falls due (None: nothing scheduled). Backs off for the next one."""
        wait = self.current
        self.current = min(self.idle_interval, self.current * 2)
        if due_in is not None:
            wait = min(wait, max(0.01, due_in))
        return wait


class Drain(Generic[B]):
    def __init__(
        self,
        db: Database,
        step: Step[B],
        *,
        batch: int = 256,
        poll_interval: float = 5.0,
        idle_interval: float = IDLE_INTERVAL,
        worker_id: str | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.db = db
        self.step = step
        self.batch = batch
        self.poll_interval = poll_interval
        self.idle = Idle(poll_interval, idle_interval)
        # Unique and short (claimed_by is 64 characters): a host name may be long.
        self.id = (worker_id or f"{uuid.uuid4().hex[:16]}:{os.getpid()}")[:48]
        self._claims = itertools.count(1)
        self._wake = threading.Event()
        # How the loop sleeps: True when woken before the timeout. Tests pass their own
        # (a fake clock) to count the polls of an idle stretch.
        self._wait = wait or self._wake.wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self.rows = 0  # rows drained by this engine, for diagnostics
        self.claims = 0  # claim transactions, for diagnostics (and the idle tests)

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> Drain[B]:
        if self.step.channel is not None:
            self._listener = Listener(self.db, self.step.channel, self._wake.set).start()
        self._thread = threading.Thread(
            target=self._loop, name=f"drain-{self.step.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._listener is not None:
            self._listener.stop()

    def wake(self) -> None:
        """Run a batch now (a step whose I/O finished work in the background calls it)."""
        self._wake.set()

    # --- draining --------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> int:
        """Claim, do and record one batch; the number of rows it had."""
        claim_id = f"{self.id}:{next(self._claims)}"
        self.claims += 1
        with self.db.transaction() as session:
            batch = self.step.claim(session, claim_id, limit or self.batch, utcnow())
        if batch is None or self.step.size(batch) == 0:
            return 0
        outcomes = self.step.io(batch)
        if outcomes is not None:
            # The I/O is done and cannot be undone: a record that fails (a deadlock, a
            # lock held by another process) is tried again with the same outcomes before
            # the batch is left to its lease (and its I/O made again).
            for attempt in range(3):
                try:
                    with self.db.transaction() as session:
                        self.step.record(session, batch, outcomes, claim_id)
                    break
                except Exception:
                    if attempt == 2:
                        raise
                    log.warning("drain %s: recording failed; again", self.step.name, exc_info=True)
                    time.sleep(0.2 * (attempt + 1))
        n = self.step.size(batch)
        self.rows += n
        return n

    def run_until_idle(self, max_rows: int | None = None) -> int:
        """Drain in this thread until nothing is due; for tests and one-off drains."""
        done = 0
        while max_rows is None or done < max_rows:
            n = self.run_once(None if max_rows is None else min(self.batch, max_rows - done))
            if n == 0:
                break
            done += n
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.step_loop()

    def step_loop(self) -> None:
        """One turn of the loop: claim a batch, then sleep unless more is due. Public for
        the tests, which run it in their thread with a fake ``wait``."""
        self._wake.clear()  # before claiming: a wake-up during the batch counts
        try:
            n = self.run_once()
        except Exception:
            log.exception("drain %s: a batch failed", self.step.name)
            n = 0
            self._stop.wait(1.0)  # the database is down, or a bug: do not spin
        if n >= self.batch:
            self.idle.worked()
            return  # more is due
        if n > 0:
            self.idle.worked()
        if self._wait(self._sleep()):
            self.idle.worked()  # a commit made rows due: answer it at once

    def _sleep(self) -> float:
        try:
            with self.db.read() as session:
                at = self.step.next_due(session)
        except Exception:
            return self.idle.timeout()
        return self.idle.timeout(None if at is None else (at - utcnow()).total_seconds())


def lease_until(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
