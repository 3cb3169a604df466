"""Accept-path and pipeline benchmark for /v3, with omnirelay run as a user runs it.

Starts ``omnirelay serve`` (HTTP + workers in one process) on a fresh database, then from
this process drives it over HTTP on loopback:

1. ``sendSMS`` closed loop: C concurrent clients, N requests -> accepted/s, p50/p99;
2. the sandbox pipeline: time until every accepted message has a final status;
3. ``sendSMS`` open loop at a fixed rate (default: half of phase 1) -> p50/p99;
4. ``sendMixed``: batches of 1000 recipients -> recipients/s.

It prints the server's peak RSS and CPU seconds per 1,000 messages.

    python bench/send.py [--db sqlite|postgresql] [-n N] [-c C] [--rate R] [--workers W]
                         [--smoke]

With ``--workers W``, ``serve --no-workers`` takes the HTTP and W ``omnirelay worker``
processes run the jobs (PostgreSQL; on SQLite one writer serializes them anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from sqlalchemy import func, select

from omnirelay.connections import service as connections
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import Omnirelay, database, percentile

PHONE = "79161234567"


def _org(db: Database) -> str:
    with db.transaction() as session:
        created = tenancy.create_organization(session, "Bench", created_via="cli")
        from omnirelay.billing import service as billing

        billing.top_up(session, created.organization.id, "10000000")
        for row in connections.list_connections(session, created.organization.id):
            connections.update(
                session,
                created.organization.id,
                row.id,
                {"settings": {"report_delay": 0, "read_delay": 0, "reply_delay": 0}},
            )
        return created.api_token


def _final(db: Database) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Message).where(Message.final_at.is_not(None))
            )
            or 0
        )


async def _closed_loop(
    base: str, token: str, n: int, concurrency: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    headers = {"Authorization": f"Token {token}"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for i in counter:
            body = {"sender": "SANDBOX", "phone": PHONE, "text": f"bench {i}"}
            t0 = time.perf_counter()
            async with session.post(f"{base}/v3/message/sendSMS", json=body) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies, errors


async def _open_loop(base: str, token: str, rate: float, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Token {token}"}

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        body = {"sender": "SANDBOX", "phone": PHONE, "text": f"paced {i}"}
        async with session.post(f"{base}/v3/message/sendSMS", json=body) as r:
            await r.read()
            if r.status != 200:
                errors += 1
        latencies.append(time.perf_counter() - t0)

    conn = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        tasks = []
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
    return latencies, errors


async def _mixed(base: str, token: str, batches: int, size: int) -> tuple[float, int]:
    headers = {"Authorization": f"Token {token}"}
    body = [
        {"route": [{"channel": "sms", "phone": PHONE, "sender": "SANDBOX", "text": f"m{i}"}]}
        for i in range(size)
    ]
    accepted = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        t0 = time.perf_counter()
        for _ in range(batches):
            async with session.post(f"{base}/v3/message/sendMixed", json=body) as r:
                data: dict[str, Any] = await r.json()
                accepted += sum(1 for i in data.get("id", []) if i)
        return time.perf_counter() - t0, accepted


def _line(name: str, value: float, unit: str) -> None:
    print(f"{name:<40} {value:>12,.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="open-loop rate (0: half)")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--mixed", type=int, default=20, help="sendMixed batches of 1000")
    parser.add_argument(
        "--workers", type=int, default=0, help="omnirelay worker processes (0: in serve)"
    )
    parser.add_argument("--smoke", action="store_true", help="a small run for CI")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.concurrency, args.seconds, args.mixed = 300, 16, 2.0, 2

    with database(args.db) as db:
        token = _org(db)
        with Omnirelay(db.url, workers=args.workers) as server:
            run(args, db, server, token)


def run(args: argparse.Namespace, db: Database, server: Omnirelay, token: str) -> None:
    base = server.base
    processes = f"serve + {args.workers} worker(s)" if args.workers else "serve"
    print(f"== bench/send.py  db={args.db}  {processes}  n={args.requests}  c={args.concurrency}")
    cpu0 = server.cpu()
    cpus0 = server.cpus()
    elapsed, lat, errors = asyncio.run(_closed_loop(base, token, args.requests, args.concurrency))
    accepted = args.requests - errors
    _line("sendSMS accepted", accepted / elapsed, "msg/s")
    _line("sendSMS latency p50", percentile(lat, 50) * 1000, "ms")
    _line("sendSMS latency p99", percentile(lat, 99) * 1000, "ms")
    if errors:
        print(f"!! {errors} requests failed")
    t0 = time.perf_counter()
    # How far the pipeline was behind the accepts when they ended: 0 means it kept up
    # (the accept rate was the limit); bench/backlog.py measures the pipeline alone.
    _line("final when the accepts ended", _final(db) / max(1, accepted) * 100, "%")
    while _final(db) < accepted:
        if time.perf_counter() - t0 > 600:
            raise SystemExit("pipeline did not finish within 600 s")
        time.sleep(0.2)
    total = elapsed + (time.perf_counter() - t0)
    _line("sandbox pipeline to final status", accepted / total, "msg/s")
    _line("CPU per 1,000 messages (all processes)", (server.cpu() - cpu0) / accepted * 1000, "s")
    if args.workers:  # the pipeline's own CPU: what the worker processes used
        for name, cpu in server.cpus().items():
            _line(f"  CPU per 1,000 messages, {name}", (cpu - cpus0[name]) / accepted * 1000, "s")
    rate = args.rate or max(10.0, accepted / elapsed / 2)
    lat2, errors2 = asyncio.run(_open_loop(base, token, rate, args.seconds))
    _line(f"sendSMS at {rate:,.0f}/s offered p50", percentile(lat2, 50) * 1000, "ms")
    _line(f"sendSMS at {rate:,.0f}/s offered p99", percentile(lat2, 99) * 1000, "ms")
    if errors2:
        print(f"!! {errors2} paced requests failed")
    if args.mixed:
        took, recipients = asyncio.run(_mixed(base, token, args.mixed, 1000))
        _line("sendMixed recipients accepted", recipients / took, "recipients/s")
    for name, peak in server.peaks().items():
        _line(f"peak RSS {name}", peak, "MB")


if __name__ == "__main__":
    main()
