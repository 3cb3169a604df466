"""Group commit of the accept path: concurrent send requests share one transaction.

A request hands its validated draft to the process's :class:`AcceptBatcher` and waits on
a future. One writer thread takes whatever is queued (up to ``max_batch`` drafts; when the
queue is short it first waits at most ``wait`` seconds for more), prepares it with
:func:`service.prepare` on a read session (connections, prices, senders, the block list
and the INSERT rows, once per organization; on SQLite without the write lock), then
writes it with :func:`service.write` in ONE short transaction: the balance locked and
debited once per organization, every message in one INSERT, one commit (one fsync) for
the lot (ADR 41). What arrives while it waits for the lock is the next batch. Each
future is resolved only after the commit: an id means the message and its job are
durable.

Each item's errors stay its own (1015, 1018, ...). When the batch's INSERT hits a
custom_id that another process committed meanwhile, the batch is rolled back and redone
item by item, each in its own savepoint, so that exactly the losers get 1018. If the
transaction fails anyway, every item of the batch gets an error: no future is left
pending, and the waiting side has a timeout besides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from omnirelay.db import Database, utcnow
from omnirelay.messaging import errors as e
from omnirelay.messaging import service
from omnirelay.messaging.service import Item, Outcome
from omnirelay.messaging.validation import Draft

log = logging.getLogger(__name__)


def failed() -> e.SendError:
    """The answer of an item whose transaction failed (nothing of it was committed)."""
    return e.SendError(1001, "Internal error", status=500)


def timed_out() -> e.SendError:
    # The item may still commit after this answer; the client's retry is then a
    # duplicate, which a custom_id or an Idempotency-Key guards against.
    return e.SendError(1001, "Internal error: accepting timed out", status=503)


def stopped() -> e.SendError:
    return e.SendError(1001, "Service unavailable: shutting down", status=503)


@dataclass(slots=True)
class _Pending:
    organization_id: str
    draft: Draft
    # Exactly one of the two: a thread's future (submit), or a future of an event loop
    # (accept), resolved from that loop once per batch (one wake-up, not one per item).
    future: Future[str] | None
    waiter: asyncio.Future[str] | None = None

    def claim(self) -> bool:
        """False if the waiter gave up (timed out) before the writer took the item."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        assert self.waiter is not None
        return not self.waiter.done()


def _settle(answers: list[tuple[asyncio.Future[str], str | e.SendError]]) -> None:
    """On the waiters' loop: resolve a batch's futures (some may have timed out)."""
    for waiter, answer in answers:
        if waiter.done():
            continue
        if isinstance(answer, e.SendError):
            waiter.set_exception(answer)
        else:
            waiter.set_result(answer)


class AcceptBatcher:
    """One per process. Thread-safe; the writer thread starts with the first draft."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 500,
        wait: float = 0.001,
        timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.max_batch = max(1, max_batch)
        self.wait = max(0.0, wait)
        self.timeout = timeout
        self.batches = 0  # transactions committed or failed, for tests and diagnostics
        self.items = 0
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- the requests' side ---------------------------------------------------------

    def submit(self, organization_id: str, draft: Draft) -> Future[str]:
        """From a thread: the message id once committed, or the item's SendError."""
        future: Future[str] = Future()
        if not self._put(_Pending(organization_id, draft, future)):
            future.set_exception(stopped())
        return future

    async def accept(self, organization_id: str, draft: Draft) -> str:
        """From a request handler: wait for the commit without holding a thread."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if not self._put(_Pending(organization_id, draft, None, waiter)):
            raise stopped()
        try:
            async with asyncio.timeout(self.timeout):
                return await waiter
        except TimeoutError:
            # The writer skips an item whose waiter is done, if it has not taken it yet.
            raise timed_out() from None

    def _put(self, item: _Pending) -> bool:
        with self._cond:
            if self._stopping:
                return False
            if self._thread is None:
                self._start_locked()
            self._queue.append(item)
            # The writer waits either for a first item or, lingering, for a full batch:
            # waking it for every item in between would only cost GIL switches.
            if len(self._queue) == 1 or len(self._queue) >= self.max_batch:
                self._cond.notify()
        return True

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> AcceptBatcher:
        """Start the writer (again, after :meth:`stop`: an app's lifespan may restart)."""
        with self._cond:
            self._stopping = False
            if self._thread is None or not self._thread.is_alive():
                self._start_locked()
        return self

    def _start_locked(self) -> None:
        self._thread = threading.Thread(target=self._run, name="accept-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Accept what is queued, then end the writer; later submits are refused."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:  # the writer never started, or did not finish in time
            left = list(self._queue)
            self._queue.clear()
            if self._thread is thread and (thread is None or not thread.is_alive()):
                self._thread = None
        self._answer(left, [Outcome(error=stopped()) for _ in left], claim=True)

    # --- the writer -----------------------------------------------------------------

    def _wait_for_work(self) -> bool:
        """Until something is queued (then linger a little for more); False to end."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self.wait and 0 < len(self._queue) < self.max_batch and not self._stopping:
                self._cond.wait_for(
                    lambda: len(self._queue) >= self.max_batch or self._stopping, self.wait
                )
            return bool(self._queue)

    def _take(self) -> list[_Pending]:
        with self._cond:
            n = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(n)]
        # A waiter that gave up (timeout) is done already: skip its item.
        return [p for p in batch if p.claim()]

    def _run(self) -> None:
        while self._wait_for_work():
            taken: list[_Pending] = []
            try:
                self._cycle(taken)
            except BaseException:  # pragma: no cover - _cycle resolves everything
                log.exception("accept batcher: unexpected failure")
                self._answer(taken, [Outcome(error=failed()) for _ in taken])

    def _cycle(self, taken: list[_Pending]) -> None:
        """Take what is queued, prepare it with no lock, then one short write
        transaction: lock, debit, insert, commit; answer."""
        taken.extend(self._take())
        if not taken:
            return
        items: list[Item] = [(p.organization_id, p.draft) for p in taken]
        try:
            now = utcnow()
            first: Work
            if self.db.is_sqlite:
                # The reads of accepting (connections, prices, block list, the rows
                # themselves) on a read session: it does not wait for SQLite's one write
                # lock, which is then held only for the writes (ADR 41).
                with self.db.read() as session:
                    out, batches = service.prepare(session, items, now, persist=False)

                def first(session: Session) -> list[Outcome]:
                    service.write(session, batches, out)
                    return out

            else:
                # PostgreSQL locks only the balance rows: one transaction for both
                # halves costs fewer round trips than a read transaction before it.
                def first(session: Session) -> list[Outcome]:
                    return service.accept_bulk(session, items, now)

            outcomes = self.commit(items, first=first)
        except Exception:
            log.exception("accept batcher: a batch of %d failed", len(taken))
            outcomes = [Outcome(error=failed()) for _ in taken]
        self.batches += 1
        self.items += len(taken)
        self._answer(taken, outcomes)

    @staticmethod
    def _answer(items: list[_Pending], outcomes: list[Outcome], claim: bool = False) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[str], Any]]] = {}
        for pending, outcome in zip(items, outcomes, strict=True):
            answer: str | e.SendError = outcome.error or outcome.id or failed()
            if pending.future is not None:
                future = pending.future
                if (claim and not future.set_running_or_notify_cancel()) or future.done():
                    continue
                if isinstance(answer, e.SendError):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
            elif pending.waiter is not None:
                by_loop.setdefault(pending.waiter.get_loop(), []).append((pending.waiter, answer))
        for loop, answers in by_loop.items():
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answers)

    def commit(self, items: Sequence[Item], first: Work | None = None) -> list[Outcome]:
        """Accept ``items`` in one transaction, item by item if the batch conflicts.
        Returns only after the commit; raises if the transaction cannot be made.
        ``first``, if given, is the first try's work (``items`` prepared already)."""
        try:
            return self._transaction(first or (lambda s: service.accept_bulk(s, items, utcnow())))
        except (IntegrityError, DataError, e.SendError) as exc:
            # A custom_id taken by a transaction that committed after our check (or a
            # balance that moved under the lock, or a value the database refuses): only
            # the items themselves can say which one it is.
            # (Not the exception's text: it carries the SQL parameters, phone numbers.)
            name = type(exc).__name__
            log.info("accept batcher: batch of %d conflicts (%s); item by item", len(items), name)
        except OperationalError:
            # A deadlock or lock timeout: nothing was committed, once more item by item.
            log.warning("accept batcher: batch of %d failed; item by item", len(items))
        return self._transaction(lambda s: [_one(s, item) for item in items])

    def _transaction(self, work: Work) -> list[Outcome]:
        done = False
        try:
            with self.db.transaction() as session:
                outcomes = work(session)
                done = True
            return outcomes
        except Exception as exc:
            if done:  # COMMIT itself failed: it may have happened, so never redo the items
                raise CommitFailed(str(exc)) from exc
            raise


Work = Callable[[Session], list[Outcome]]


class CommitFailed(Exception):
    """The COMMIT of a batch raised: its outcome is unknown, its items are answered with
    an error and not tried again."""


def _one(session: Session, item: Item) -> Outcome:
    """One item in its own savepoint: its failure undoes its writes only."""
    try:
        with session.begin_nested():
            return service.accept_bulk(session, [item], utcnow())[0]
    except IntegrityError as exc:
        if "custom_id" in str(exc.orig):
            return Outcome(error=e.duplicate_custom_id())
        log.exception("accept batcher: item refused by the database")
        return Outcome(error=failed())
    except DataError:
        log.exception("accept batcher: item refused by the database")
        return Outcome(error=failed())
    except e.SendError as exc:
        return Outcome(error=exc)
