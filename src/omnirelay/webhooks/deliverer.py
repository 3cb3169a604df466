"""The deliverer: claims due webhook events, POSTs them concurrently, records attempts.

Runs an asyncio loop in a thread of a worker process. Database work is synchronous and
runs in worker threads (``asyncio.to_thread``); results are written in batches. A URL has
at most ``per_url`` deliveries in flight, so a receiver that hangs holds only its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from multidict import CIMultiDictProxy

from omnirelay.db import Database, utcnow
from omnirelay.net.connectors import GuardedConnector
from omnirelay.wakeup import Listener
from omnirelay.webhooks import repository as repo
from omnirelay.webhooks import service, signing
from omnirelay.webhooks.delivery import classify, next_delay
from omnirelay.webhooks.models import WebhookEvent, WebhookSettings
from omnirelay.webhooks.ssrf import IPNetwork, UnsafeURL, precheck

log = logging.getLogger(__name__)
USER_AGENT = "omnirelay-webhooks/1"
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Job:
    """What one delivery needs, detached from the database session."""

    seq: int
    id: str
    endpoint_id: int
    url: str
    body: bytes
    attempt: int
    schedule_step: int
    schedule: tuple[float, ...]
    secrets: tuple[str, ...]


class Deliverer:
    def __init__(
        self,
        db: Database,
        *,
        allowed_networks: Sequence[IPNetwork] = (),
        concurrency: int = 256,
        per_url: int = 64,
        timeout: float = 15.0,
        lease_seconds: float = 60.0,
        poll_interval: float = 5.0,
        flush_interval: float = 0.02,
        deliverer_id: str | None = None,
    ) -> None:
        self.db = db
        self.allowed = tuple(allowed_networks)
        self.concurrency = concurrency
        self.per_url = per_url
        self.timeout = timeout
        self.lease_seconds = max(lease_seconds, timeout * 2)
        self.poll_interval = poll_interval
        self.flush_interval = flush_interval
        # One claim transaction per delivery would cap throughput at the claim rate.
        self._claim_min = max(1, concurrency // 4)
        self.id = deliverer_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._client: aiohttp.ClientSession | None = None
        self._inflight: dict[asyncio.Task[None], Job] = {}
        self._per_url: Counter[str] = Counter()
        self._backlog: defaultdict[str, deque[Job]] = defaultdict(deque)
        self._results: list[repo.AttemptResult] = []

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(ready)), name="webhook-deliverer", daemon=True
        )
        self._thread.start()
        ready.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- the loop ---------------------------------------------------------------

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._wake = asyncio.Event(), asyncio.Event()
        listener = Listener(self.db, service.NOTIFY_CHANNEL, self.wake).start()
        # Every peer through the one SSRF guard: names by its resolver, address literals
        # (which aiohttp connects to without resolving) checked by the connector itself.
        connector = GuardedConnector(
            self.allowed, limit=self.concurrency, limit_per_host=0, ttl_dns_cache=10
        )
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=False,
            trust_env=False,
        ) as client:
            self._client = client
            helpers = [
                asyncio.create_task(self._flush_loop()),
                asyncio.create_task(self._heartbeat_loop()),
            ]
            ready.set()
            while not self._stop.is_set():
                self._wake.clear()  # before claiming: a wake-up during the claim counts
                sleep = await self._claim_and_start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep)
            backlog = [job.seq for queue in self._backlog.values() for job in queue]
            self._backlog.clear()
            if backlog:
                await asyncio.to_thread(self._release, backlog)
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=self.timeout + 1)
            for task in helpers:
                task.cancel()
            await self._flush()
        await asyncio.to_thread(listener.stop)

    async def _claim_and_start(self) -> float:
        free = self.concurrency - len(self._inflight)
        if free < self._claim_min and self._inflight:
            return self.poll_interval  # claim in batches: finishing tasks wake us
        full = [url for url, queue in self._backlog.items() if len(queue) >= self.per_url]
        try:
            jobs, next_due = await asyncio.to_thread(self._claim, free, full)
        except Exception:
            log.exception("claiming webhook events failed")
            return self.poll_interval
        over: list[int] = []
        for job in jobs:
            if self._per_url[job.url] < self.per_url:
                self._start(job)
            elif len(self._backlog[job.url]) < self.per_url:
                self._backlog[job.url].append(job)  # started when a slot of its URL frees
            else:
                over.append(job.seq)
        if over:
            await asyncio.to_thread(self._release, over)
            return 0.0  # claim again: those URLs are excluded now
        if len(jobs) == free:
            return 0.0
        wait = (next_due - utcnow()).total_seconds() if next_due else 0.0
        # Due but not claimable (in flight, or excluded): a finishing delivery or a
        # notification wakes us; only future retries need a timer.
        return min(self.poll_interval, wait) if wait > 0 else self.poll_interval

    def _start(self, job: Job) -> None:
        self._per_url[job.url] += 1
        task = asyncio.create_task(self._deliver(job))
        self._inflight[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self._inflight.pop(task)
        self._per_url[job.url] -= 1
        if self._per_url[job.url] <= 0:
            del self._per_url[job.url]
        queue = self._backlog.get(job.url)
        if queue:
            self._start(queue.popleft())
            if not queue:
                del self._backlog[job.url]
        # Wake-ups coalesce while a claim runs, so this is one claim per batch of
        # completions, not one per delivery.
        if self._wake is not None and self.concurrency - len(self._inflight) >= self._claim_min:
            self._wake.set()

    async def _heartbeat_loop(self) -> None:
        """Extend the leases of everything we hold, so a long backlog never lapses."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = [j.seq for j in self._inflight.values()]
            held += [j.seq for q in self._backlog.values() for j in q]
            if held:
                try:
                    await asyncio.to_thread(self._renew, held)
                except Exception:
                    log.exception("renewing webhook leases failed")

    def _renew(self, seqs: list[int]) -> None:
        with self.db.transaction() as session:
            repo.renew(session, self.id, seqs, self.lease_seconds)

    def _claim(self, limit: int, exclude: list[str]) -> tuple[list[Job], datetime | None]:
        with self.db.transaction() as session:
            events = repo.claim(
                session,
                self.id,
                limit=limit,
                per_url=self.per_url,
                lease_seconds=self.lease_seconds,
                exclude_urls=exclude,
            )
            settings = repo.settings_for(session, [e.organization_id for e in events])
            for org_id in {e.organization_id for e in events} - settings.keys():
                settings[org_id] = service.settings(session, org_id)
            jobs = [self._job(e, settings[e.organization_id]) for e in events]
            next_due = None if len(events) == limit else repo.next_due_at(session)
        return jobs, next_due

    def _release(self, seqs: list[int]) -> None:
        with self.db.transaction() as session:
            repo.release(session, self.id, seqs)

    @staticmethod
    def _job(ev: WebhookEvent, st: WebhookSettings) -> Job:
        body = json.dumps(ev.payload, separators=(",", ":"), ensure_ascii=False).encode()
        return Job(
            seq=ev.seq,
            id=ev.id,
            endpoint_id=ev.endpoint_id,
            url=ev.url,
            body=body,
            attempt=ev.attempts + 1,
            schedule_step=ev.schedule_step,
            schedule=tuple(float(s) for s in st.retry_schedule),
            secrets=tuple(service.signing_secrets(st)),
        )

    # --- one delivery -------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        started = utcnow()
        t0 = time.perf_counter()
        status: int | None = None
        error: str | None = None
        outcome: str
        next_at: datetime | None = None
        try:
            status, retry_after_headers = await self._post(job)
            verdict = classify(status, retry_after_headers)
            if status is not None and verdict.kind != "delivered":
                error = f"receiver answered {status}"
            outcome = verdict.kind
            retry_after = verdict.retry_after
        except UnsafeURL as exc:
            # The address the URL now resolves to is not allowed: never retry that.
            outcome, error, retry_after = "failed", exc.message, None
        except TimeoutError:
            outcome, error, retry_after = "retry", f"timeout after {self.timeout:g} s", None
        except (aiohttp.ClientError, OSError) as exc:
            outcome, error, retry_after = "retry", f"{type(exc).__name__}: {exc}"[:500], None
        except Exception as exc:  # never let one delivery kill the loop
            log.exception("webhook delivery %s crashed", job.id)
            outcome, error, retry_after = "retry", f"internal error: {type(exc).__name__}", None
        if outcome == "retry":
            delay = next_delay(job.schedule, job.schedule_step, retry_after)
            if delay is None:
                outcome = "failed"
            else:
                next_at = utcnow() + timedelta(seconds=delay)
        self._results.append(
            repo.AttemptResult(
                seq=job.seq,
                endpoint_id=job.endpoint_id,
                attempt=job.attempt,
                started_at=started,
                duration_ms=int((time.perf_counter() - t0) * 1000),
                status_code=status,
                error=error,
                outcome=outcome,
                next_attempt_at=next_at,
            )
        )

    async def _post(self, job: Job) -> tuple[int, CIMultiDictProxy[str]]:
        precheck(job.url, self.allowed)  # and every address again by the GuardedConnector
        headers = signing.headers(job.secrets, job.id, int(time.time()), job.body)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        assert self._client is not None
        async with self._client.post(
            job.url, data=job.body, headers=headers, allow_redirects=False
        ) as resp:
            await resp.content.read(MAX_RESPONSE_BYTES)  # drain a little, keep-alive
            return resp.status, resp.headers

    # --- results and wake-ups ---------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            await asyncio.to_thread(self._record, batch)
        except Exception:
            # The leases run out and the events are delivered again (same webhook-id).
            log.exception("recording %d webhook attempts failed", len(batch))
            return
        if self._wake is not None:
            # Recorded results free ordering keys and set retry times: claim again.
            self._wake.set()

    def _record(self, batch: list[repo.AttemptResult]) -> None:
        with self.db.transaction() as session:
            repo.record_results(session, self.id, batch)
