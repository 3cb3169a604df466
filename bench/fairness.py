"""Fairness between organizations: one organization's backlog and another's latency.

Starts ``omnirelay serve`` on a fresh database with two organizations. Organization A
queues a backlog of N messages with ``sendMixed``; right after, organization B sends one
``sendSMS`` every ``--interval`` seconds while A's backlog drains. It prints B's
accepted -> sent latency (the message's creation to its attempt's ``sent``) p50/p99, A's
drain rate, and the peak RSS. Issue 18's target: B's p99 under 1 s behind A's 100,000.

    python bench/fairness.py [--db sqlite|postgresql] [-n N] [--workers W] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from sqlalchemy import func, select

from omnirelay.billing import service as billing
from omnirelay.connections import service as connections
from omnirelay.db import Database
from omnirelay.messaging.models import Message, MessageAttempt
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import Omnirelay, database, percentile

PHONE = "79161234567"


def _org(db: Database, name: str) -> tuple[str, str]:
    with db.transaction() as session:
        created = tenancy.create_organization(session, name, created_via="cli")
        billing.top_up(session, created.organization.id, "10000000")
        for row in connections.list_connections(session, created.organization.id):
            connections.update(
                session,
                created.organization.id,
                row.id,
                {"settings": {"report_delay": 0, "read_delay": 0, "reply_delay": 0}},
            )
        return created.organization.id, created.api_token


async def _backlog(base: str, token: str, n: int) -> float:
    headers = {"Authorization": f"Token {token}"}
    step = {"channel": "sms", "phone": PHONE, "sender": "SANDBOX", "text": "backlog"}
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        left = n
        while left > 0:
            size = min(1000, left)
            async with session.post(
                f"{base}/v3/message/sendMixed", json=[{"route": [step]}] * size
            ) as r:
                if r.status != 200:
                    raise SystemExit(f"sendMixed answered {r.status}: {await r.text()}")
            left -= size
    return time.perf_counter() - t0


async def _trickle(base: str, token: str, interval: float, until: float) -> int:
    headers = {"Authorization": f"Token {token}"}
    sent = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        while time.monotonic() < until:
            body = {"sender": "SANDBOX", "phone": PHONE, "text": f"b{sent}"}
            async with session.post(f"{base}/v3/message/sendSMS", json=body) as r:
                await r.read()
                sent += r.status == 200
            await asyncio.sleep(interval)
    return sent


def _waiting(db: Database, organization_id: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.organization_id == organization_id, Message.status == "accepted")
            )
            or 0
        )


def _latencies(db: Database, organization_id: str) -> list[float]:
    with db.read() as session:
        rows = session.execute(
            select(Message.created_at, func.min(MessageAttempt.created_at))
            .join(MessageAttempt, MessageAttempt.message_id == Message.id)
            .where(Message.organization_id == organization_id)
            .group_by(Message.id, Message.created_at)
        )
        return [(sent - created).total_seconds() for created, sent in rows]


def _line(name: str, value: float, unit: str) -> None:
    print(f"{name:<44} {value:>12,.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("-n", "--backlog", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=0.1, help="B's pause between sends")
    parser.add_argument("--workers", type=int, default=0, help="omnirelay worker processes")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    parser.add_argument("--smoke", action="store_true", help="a small run for CI")
    args = parser.parse_args()
    if args.smoke:
        args.backlog, args.timeout = 3000, 120.0

    with database(args.db) as db:
        org_a, token_a = _org(db, "Backlog")
        org_b, token_b = _org(db, "Other")
        with Omnirelay(db.url, workers=args.workers) as server:
            print(f"== bench/fairness.py  db={args.db}  backlog={args.backlog:,}")
            took = asyncio.run(_backlog(server.base, token_a, args.backlog))
            _line("A: backlog queued", args.backlog / took, "msg/s")
            start = time.monotonic()
            deadline = start + args.timeout
            sent_b = 0
            while _waiting(db, org_a) > 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"A's backlog did not drain within {args.timeout:.0f} s")
                sent_b += asyncio.run(
                    _trickle(server.base, token_b, args.interval, time.monotonic() + 2.0)
                )
            drained = time.monotonic() - start
            time.sleep(2.0)  # B's last messages go out
            _line("A: backlog dispatched", args.backlog / drained, "msg/s")
            lat = _latencies(db, org_b)
            _line("B: messages sent during A's drain", len(lat), "")
            if lat:
                _line("B: accepted -> sent p50", percentile(lat, 50) * 1000, "ms")
                _line("B: accepted -> sent p99", percentile(lat, 99) * 1000, "ms")
            if len(lat) < sent_b:
                print(f"!! {sent_b - len(lat)} of B's messages were not sent")
            for name, peak in server.peaks().items():
                _line(f"peak RSS {name}", peak, "MB")


if __name__ == "__main__":
    main()
