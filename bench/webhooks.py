"""Webhook delivery benchmark: events -> the deliverer -> a local receiver on loopback.

Phases: (1) throughput: N events queued, then drained; (2) latency: events emitted at a
steady rate, end-to-end latency from commit to arrival; (3) schedule: a receiver that
fails the first k attempts of each event, on a compressed clock (the seed 004 schedule
divided by 100), shows the observed waits against the schedule.

    python bench/webhooks.py [--db sqlite|postgresql] [--events N] [--rate R]
                             [--processes N] [--smoke]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, literal_column, select

from omnirelay.db import Database, utcnow
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import database, peak_rss_mb, percentile, proc_stats
from omnirelay.testing.fastreceiver import FastReceiver
from omnirelay.webhooks import service
from omnirelay.webhooks.deliverer import Deliverer
from omnirelay.webhooks.models import DEFAULT_RETRY_SCHEDULE, WebhookEvent
from omnirelay.webhooks.ssrf import parse_networks

LOOPBACK = parse_networks("127.0.0.0/8")
COMPRESSION = 100


def _org(db: Database, schedule: list[float]) -> str:
    with db.transaction() as session:
        org_id = tenancy.create_organization(session, "Bench", created_via="cli").organization.id
        service.set_retry_schedule(session, org_id, schedule)
    return org_id


def _emit(db: Database, org_id: str, url: str, n: int, batch: int = 500) -> None:
    for start in range(0, n, batch):
        with db.transaction() as session:
            service.emit_many(
                session,
                [
                    service.NewEvent(org_id, url, "bench", {"i": i, "t": time.time()})
                    for i in range(start, min(n, start + batch))
                ],
            )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _delivered(db: Database, org_id: str) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(WebhookEvent)
                .where(WebhookEvent.organization_id == org_id, WebhookEvent.status == "delivered")
            )
            or 0
        )


def _pending(db: Database) -> bool:
    """Any event pending (each phase's organization is the only one with events left):
    the partial index of pending events answers it at once. With the organization in
    the WHERE, SQLite walked that organization's delivered events instead (~6 ms of CPU
    a poll, counted as delivery CPU)."""
    with db.read() as session:
        return bool(
            session.scalar(
                select(exists().where(WebhookEvent.status == literal_column("'pending'")))
            )
        )


def _wait_delivered(db: Database, org_id: str, n: int, limit: float) -> float:
    """Until nothing is pending (polled every 0.1 s: this process's CPU is what is
    measured, and a COUNT of the delivered every 0.05 s was 7 % of it), then all ``n``
    must be delivered. The throughput phase times the drain by the last delivered_at."""
    t0 = time.perf_counter()
    while True:
        if time.perf_counter() - t0 > limit:
            raise SystemExit(f"not all {n} events delivered within {limit:.0f} s")
        if not _pending(db) and _delivered(db, org_id) >= n:
            return time.perf_counter() - t0
        time.sleep(0.1)


def _last_delivered(db: Database, org_id: str) -> datetime:
    with db.read() as session:
        at = session.scalar(
            select(func.max(WebhookEvent.delivered_at)).where(
                WebhookEvent.organization_id == org_id
            )
        )
    assert at is not None
    return at


def _child_deliverer(url: str, ready: Any, stop: Any) -> None:
    """Another deliverer process on the same database: claims disjoint batches (SKIP
    LOCKED on PostgreSQL; on SQLite the write lock and the leases)."""
    db = Database(url)
    deliverer = Deliverer(db, allowed_networks=LOOPBACK)
    deliverer.start()
    ready.set()
    stop.wait()
    deliverer.stop()
    db.dispose()


def throughput(db: Database, n: int, processes: int = 1) -> None:
    org_id = _org(db, list(DEFAULT_RETRY_SCHEDULE))
    receiver = FastReceiver().start()
    t0 = time.perf_counter()
    _emit(db, org_id, receiver.url(), n)
    emit_s = time.perf_counter() - t0
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    children = []
    for _ in range(processes - 1):  # started (imports done) before the clock starts
        ready = ctx.Event()
        child = ctx.Process(target=_child_deliverer, args=(db.url, ready, stop), daemon=True)
        children.append((child, ready))
    deliverer = Deliverer(db, allowed_networks=LOOPBACK)
    cpu0, receiver_cpu0 = _cpu(), proc_stats(receiver.pid)[1]
    started = utcnow()
    for child, _ in children:
        child.start()
    deliverer.start()
    try:
        child_cpu0 = []
        for child, ready in children:
            ready.wait(60)
            assert child.pid is not None
            child_cpu0.append(proc_stats(child.pid)[1])
        _wait_delivered(db, org_id, n, limit=max(60.0, n / 100))
        # Before the stop (its wait is not delivery work). A child's start-up (imports,
        # until it is ready) is left out; a little of its work before may be too.
        cpu = _cpu() - cpu0
        for (child, _), c0 in zip(children, child_cpu0, strict=True):
            assert child.pid is not None
            cpu += proc_stats(child.pid)[1] - c0
    finally:
        stop.set()
        deliverer.stop()
        for child, _ in children:
            child.join(30)
    drain_s = (_last_delivered(db, org_id) - started).total_seconds()
    # CPU time is what the machine's other load does not change: the rate this process
    # would reach with a core of its own (the receiver has the other).
    receiver_cpu = proc_stats(receiver.pid)[1] - receiver_cpu0
    seen = receiver.finish()
    twice = sum(1 for times in seen["arrivals"].values() if len(times) > 1)
    print(
        f"throughput ({processes} deliverer process{'es' if processes > 1 else ''}): "
        f"{n} events queued at {n / emit_s:,.0f}/s; "
        f"drained at {n / drain_s:,.0f} deliveries/s ({drain_s:.2f} s); "
        f"receiver saw {seen['ok']} ({twice} ids more than once)\n"
        f"  CPU per delivery: the deliverers {cpu / n * 1e6:,.0f} us "
        f"({n / cpu:,.0f} deliveries per CPU-second), receiver {receiver_cpu / n * 1e6:,.0f} us"
    )


def latency(db: Database, rate: int, seconds: float) -> None:
    org_id = _org(db, list(DEFAULT_RETRY_SCHEDULE))
    receiver = FastReceiver().start()
    deliverer = Deliverer(db, allowed_networks=LOOPBACK)
    deliverer.start()
    tick = 0.02
    per_tick = max(1, int(rate * tick))
    total = 0
    try:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            _emit(db, org_id, receiver.url(), per_tick, batch=per_tick)
            total += per_tick
            sleep = start + (total / rate) - time.perf_counter()
            if sleep > 0:
                time.sleep(sleep)
        _wait_delivered(db, org_id, total, limit=60)
    finally:
        deliverer.stop()
    lat = [x * 1000 for x in receiver.finish()["latencies"]]
    print(
        f"latency at {rate}/s for {seconds:g} s ({total} events): "
        f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
        f"max {max(lat):.1f} ms"
    )


def schedule(db: Database, events: int, fail_first: int) -> None:
    compressed = [s / COMPRESSION for s in DEFAULT_RETRY_SCHEDULE]
    org_id = _org(db, compressed)
    receiver = FastReceiver(fail_first=fail_first).start()
    deliverer = Deliverer(db, allowed_networks=LOOPBACK, poll_interval=0.5)
    deliverer.start()
    try:
        _emit(db, org_id, receiver.url(), events)
        _wait_delivered(db, org_id, events, limit=120)
    finally:
        deliverer.stop()
    arrivals = receiver.finish()["arrivals"]
    print(
        f"schedule (seed 004 / {COMPRESSION}), receiver fails the first {fail_first} "
        f"attempts of each of {events} events:"
    )
    ok = True
    for step in range(fail_first):
        gaps = [times[step + 1] - times[step] for times in arrivals.values()]
        want = compressed[step]
        ok &= min(gaps) >= want * 0.95
        print(
            f"  wait after attempt {step + 1}: scheduled {want:.2f} s, "
            f"observed min {min(gaps):.3f} s, max {max(gaps):.3f} s"
        )
    counts = {len(v) for v in arrivals.values()}
    print(
        f"  attempts per event: {sorted(counts)} (expected [{fail_first + 1}]); "
        f"schedule kept: {'yes' if ok and counts == {fail_first + 1} else 'NO'}"
    )
    if not ok or counts != {fail_first + 1}:
        raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--fail-first", type=int, default=3)
    ap.add_argument("--only", choices=["throughput", "latency", "schedule"], help="one phase")
    ap.add_argument(
        "--processes", type=int, default=1, help="deliverer processes in the throughput phase"
    )
    ap.add_argument("--smoke", action="store_true", help="small run for CI")
    args = ap.parse_args()
    if args.smoke:
        args.events, args.rate, args.seconds, args.fail_first = 300, 200, 1.0, 2
    print(f"== webhooks benchmark on {args.db}")
    with database(args.db) as db:
        if args.only in (None, "throughput"):
            throughput(db, args.events, args.processes)
        if args.only in (None, "latency"):
            latency(db, args.rate, args.seconds)
        if args.only in (None, "schedule"):
            schedule(db, 10 if args.smoke else 50, args.fail_first)
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
