"""The drain engine: claim a batch of due rows in one statement, do its I/O with no
transaction open, record the whole batch's outcomes in one transaction (ADR 18).

A :class:`Step` says what one drain does; :class:`Drain` runs it on a thread, woken by a
commit that made rows due (``wakeup.notify`` on the step's channel: NOTIFY on
PostgreSQL, in-process on SQLite) or, failing that, when the next row falls due or every
``poll_interval`` seconds. A batch whose process dies between its claim and its record
is claimed again when its lease has passed: at-least-once, never lost.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
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


class Drain(Generic[B]):
    def __init__(
        self,
        db: Database,
        step: Step[B],
        *,
        batch: int = 256,
        poll_interval: float = 5.0,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.step = step
        self.batch = batch
        self.poll_interval = poll_interval
        # Unique and short (claimed_by is 64 characters): a host name may be long.
        self.id = (worker_id or f"{uuid.uuid4().hex[:16]}:{os.getpid()}")[:48]
        self._claims = itertools.count(1)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self.rows = 0  # rows drained by this engine, for diagnostics

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
            self._wake.clear()  # before claiming: a wake-up during the batch counts
            try:
                n = self.run_once()
            except Exception:
                log.exception("drain %s: a batch failed", self.step.name)
                n = 0
                self._stop.wait(1.0)  # the database is down, or a bug: do not spin
            if n >= self.batch:
                continue  # more is due
            self._wake.wait(self._sleep())

    def _sleep(self) -> float:
        try:
            with self.db.read() as session:
                at = self.step.next_due(session)
        except Exception:
            return self.poll_interval
        if at is None:
            return self.poll_interval
        wait = (at - utcnow()).total_seconds()
        return min(self.poll_interval, max(0.01, wait))


def lease_until(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
