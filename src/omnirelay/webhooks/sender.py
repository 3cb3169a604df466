"""The webhook drain's HTTP side: one asyncio loop in its own thread POSTs the claimed
deliveries over keep-alive connections pooled per host (net/http1.py: httptools, every
connection through the SSRF guard, no redirects; ADR 42); no database here.

The drain thread hands over a batch (``submit``) and collects outcomes as they finish
(``take``), so a slow receiver never holds up a batch: what it has not answered yet is
recorded with a later batch. A host is served by up to ``per_host`` connection workers,
each taking the host's next delivery when it has an answer (no task per delivery), and
holds ``HOST_QUEUE_FACTOR`` times as many deliveries here; beyond that the claim leaves
its events in the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from yarl import URL

from omnirelay.db import utcnow
from omnirelay.net.http1 import Destination, Pool, destination
from omnirelay.net.ssrf import IPNetwork, UnsafeURL
from omnirelay.retry import Schedule
from omnirelay.webhooks import signing
from omnirelay.webhooks.bulk_repository import AttemptResult
from omnirelay.webhooks.delivery import classify

log = logging.getLogger(__name__)
USER_AGENT = "omnirelay-webhooks/1"
# The headers every delivery has; the Standard Webhooks ones follow, per delivery.
STATIC_HEADERS = f"Content-Type: application/json\r\nUser-Agent: {USER_AGENT}\r\n".encode()
# A host holds up to this many times its in-flight limit (the rest wait here, leased):
# big enough for a claim of a few hundred to one fast receiver, small enough that a
# receiver that hangs holds few (its own) events out of other processes' reach.
HOST_QUEUE_FACTOR = 16


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2-3 times more
class Job:
    """What one delivery needs, detached from the database."""

    seq: int
    id: str
    claim_id: str
    endpoint_id: int
    url: str
    body: bytes
    attempt: int
    schedule_step: int  # failures so far in this schedule (a replay starts it over)
    backoff: Schedule
    keys: tuple[Any, ...]  # keyed HMACs (signing.macs), the current secret's first


@dataclass(slots=True)
class _Held:
    job: Job
    host: str
    lease_end: float  # monotonic


def host_of(url: str) -> str:
    """The key of per-host limits and keep-alive: scheme, host and port."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return url


class Sender:
    def __init__(
        self,
        allowed: Sequence[IPNetwork],
        *,
        concurrency: int,
        per_host: int,
        timeout: float,
        lease_seconds: float,
    ) -> None:
        self.allowed = tuple(allowed)
        self.concurrency = concurrency
        self.per_host = per_host
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self.on_ready: Callable[[], None] | None = None  # outcomes wait: wake the drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: Pool | None = None
        # Shared with the drain thread, under _cond.
        self._cond = threading.Condition()
        self._held: dict[int, _Held] = {}
        self._per_host: Counter[str] = Counter()  # held (in flight + waiting) per host
        self._ready: list[AttemptResult] = []
        self._want = 0  # > 0: the drain thread waits in take() for that many outcomes
        # Loop thread only.
        self._running: Counter[str] = Counter()  # connection workers per host
        self._workers = 0  # all hosts' (at most ``concurrency``)
        self._starved: set[str] = set()  # hosts with deliveries waiting for a worker
        self._queued: dict[str, deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dests: dict[str, Destination | UnsafeURL] = {}  # parsed and prechecked
        self._hosts: dict[str, str] = {}

    # --- lifecycle (drain thread) ---------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="webhook-sender", daemon=True
        )
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._open())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._close())
        loop.close()

    async def _open(self) -> None:
        # Every connection through the one SSRF guard (the pool resolves and checks).
        self._pool = Pool(self.allowed)  # a connection per worker: ``concurrency`` at most

    async def _close(self) -> None:
        for task in list(self._tasks):  # outlived stop(): released, delivered again
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._pool.close()

    def stop(self, timeout: float) -> tuple[list[AttemptResult], list[tuple[int, str]]]:
        """Stop starting deliveries, let those in flight finish (up to ``timeout``), stop
        the loop. What finished, to record; (seq, claim id) of the rest, to release."""
        loop = self._loop
        if loop is None:
            return [], []
        unstarted = asyncio.run_coroutine_threadsafe(self._drop_queued(), loop).result(10)
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._held) > len(unstarted) and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            ready, self._ready = self._ready, []
            rest = [(h.job.seq, h.job.claim_id) for h in self._held.values()]
            self._held.clear()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None
        return ready, rest

    async def _drop_queued(self) -> list[int]:
        dropped = [job.seq for queue in self._queued.values() for job in queue]
        self._queued.clear()
        return dropped

    # --- the drain thread's side ----------------------------------------------------------

    def held(self) -> int:
        with self._cond:
            return len(self._held)

    @property
    def host_queue(self) -> int:
        """Deliveries of one host held at most (in flight and waiting their turn)."""
        return HOST_QUEUE_FACTOR * self.per_host

    def room_per_url(self) -> tuple[dict[str, int], list[str]]:
        """How many more events of each URL we hold may take (a URL's host may hold
        ``host_queue``), and the URLs whose host is full (left out of the claim)."""
        with self._cond:
            per_url: Counter[str] = Counter(h.job.url for h in self._held.values())
            room: dict[str, int] = {}
            full: list[str] = []
            for url in per_url:
                left = self.host_queue - self._per_host[self._host(url)]
                if left <= 0:
                    full.append(url)
                room[url] = max(0, left)
            return room, full

    def submit(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        assert self._loop is not None
        end = time.monotonic() + self.lease_seconds
        with self._cond:
            for job in jobs:
                host = self._host(job.url)
                self._held[job.seq] = _Held(job, host, end)
                self._per_host[host] += 1
        self._loop.call_soon_threadsafe(self._start_all, list(jobs))

    def take(self, want: int, wait: float) -> list[AttemptResult]:
        """The outcomes finished so far, waiting up to ``wait`` seconds until at least
        ``want`` have (or nothing is in flight any more)."""
        deadline = time.monotonic() + wait
        with self._cond:
            self._want = want
            try:
                while len(self._ready) < want and self._held:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            finally:
                self._want = 0
            ready, self._ready = self._ready, []
            return ready

    def expiring(self) -> list[tuple[int, str]]:
        """(seq, claim id) of what we hold whose lease is past half: to renew now."""
        now = time.monotonic()
        with self._cond:
            due = [h for h in self._held.values() if h.lease_end - now < self.lease_seconds / 2]
            for h in due:
                h.lease_end = now + self.lease_seconds
            return [(h.job.seq, h.job.claim_id) for h in due]

    def _host(self, url: str) -> str:
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = host_of(url)
        return host

    # --- the loop's side -------------------------------------------------------------------

    def _start_all(self, jobs: list[Job]) -> None:
        touched: set[str] = set()
        for job in jobs:
            host = self._hosts.get(job.url) or host_of(job.url)
            self._queued.setdefault(host, deque()).append(job)
            touched.add(host)
        for host in touched:
            self._spawn(host)

    def _spawn(self, host: str) -> None:
        """Workers for ``host``'s waiting deliveries, up to its limit and the total."""
        queue = self._queued.get(host)
        if not queue:
            return
        want = min(self.per_host, len(queue)) - self._running[host]
        loop = asyncio.get_running_loop()
        while want > 0 and self._workers < self.concurrency:
            self._running[host] += 1
            self._workers += 1
            task = loop.create_task(self._work(host))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            want -= 1
        if want > 0:
            self._starved.add(host)

    async def _work(self, host: str) -> None:
        """A connection worker: the host's deliveries one after the other (the pool
        keeps its connection alive between them)."""
        try:
            while True:
                queue = self._queued.get(host)
                if not queue:
                    break
                job = queue.popleft()
                self._finish(job, await self._deliver(job))
        finally:
            self._running[host] -= 1
            self._workers -= 1
            if self._running[host] <= 0:
                del self._running[host]
                if not self._queued.get(host):
                    self._queued.pop(host, None)
            for other in list(self._starved):  # a worker is free: for a host waiting
                self._starved.discard(other)
                self._spawn(other)
                if self._workers >= self.concurrency:
                    break

    def _dest(self, url: str) -> Destination:
        dest = self._dests.get(url)
        if dest is None:
            try:
                dest = destination(url, self.allowed)  # names checked when connecting
            except UnsafeURL as exc:
                dest = exc
            if len(self._dests) > 10_000:
                self._dests.clear()
            self._dests[url] = dest
        if isinstance(dest, UnsafeURL):
            raise dest
        return dest

    async def _deliver(self, job: Job) -> AttemptResult:
        started = utcnow()
        t0 = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            status, verdict_headers = await self._post(job)
            verdict = classify(status, verdict_headers)
            outcome: str = verdict.kind
            retry_after = verdict.retry_after
            if outcome != "delivered":
                error = f"receiver answered {status}"
        except UnsafeURL as exc:
            # The address the URL now resolves to is not allowed: never retry that.
            outcome, error = "failed", exc.message
        except TimeoutError:
            outcome, error = "retry", f"timeout after {self.timeout:g} s"
        except OSError as exc:
            outcome, error = "retry", f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # never let one delivery kill the loop
            log.exception("webhook delivery %s crashed", job.id)
            outcome, error = "retry", f"internal error: {type(exc).__name__}"
        elapsed = time.perf_counter() - t0
        next_at: datetime | None = None
        if outcome == "retry":
            delay = job.backoff.delay(job.schedule_step + 1, retry_after)
            if delay is None:
                outcome = "failed"
            else:
                next_at = started + timedelta(seconds=elapsed + delay)
        return AttemptResult(
            job.seq,
            job.claim_id,
            job.endpoint_id,
            job.attempt,
            started,
            int(elapsed * 1000),
            status,
            error,
            outcome,
            next_at,
        )

    def _finish(self, job: Job, result: AttemptResult) -> None:
        with self._cond:
            if self._held.pop(job.seq, None) is None:
                return  # given up at stop: released, delivered again later
            host = self._hosts.get(job.url) or host_of(job.url)
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]
            self._ready.append(result)
            waiting = self._want > 0
            # Wake the waiting drain thread once, when it has what it waits for (not on
            # every answer: each wake-up is a thread switch).
            if waiting and (len(self._ready) >= self._want or not self._held):
                self._cond.notify()
            first = len(self._ready) == 1
        if first and not waiting and self.on_ready is not None:
            self.on_ready()  # the drain is asleep: outcomes wait to be recorded

    async def _post(self, job: Job) -> tuple[int, dict[str, str] | None]:
        dest = self._dest(job.url)
        timestamp = int(time.time())
        headers = b"%swebhook-id: %s\r\nwebhook-timestamp: %d\r\nwebhook-signature: %s\r\n" % (
            STATIC_HEADERS,
            job.id.encode(),
            timestamp,
            signing.signature(job.keys, job.id, timestamp, job.body),
        )
        assert self._pool is not None
        status, retry_after = await self._pool.post(dest, headers, job.body, self.timeout)
        return status, {"retry-after": retry_after} if retry_after else None
