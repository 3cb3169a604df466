"""HTTP sendSMS -> omnirelay -> SMPP -> a local SMSC (``smpp34``) on loopback.

Starts ``omnirelay serve`` on a fresh database with an ``smpp`` connection (window W),
sends N messages over HTTP from C concurrent clients, and prints accepted/s, submitted/s
(as the SMSC saw them), p50/p99 from the HTTP request to the SMSC receiving the submit_sm,
the time until every message is delivered, and the server's peak RSS.

    python bench/smpp.py [--db sqlite|postgresql] [-n N] [-c C] [--window W] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiohttp
from sqlalchemy import func, select

from omnirelay.connections import service as connections
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import database, percentile
from omnirelay.testing.smsc import Received, Smsc, free_port


def _org(db: Database, smsc_port: int, window: int) -> str:
    with db.transaction() as session:
        created = tenancy.create_organization(session, "Bench", created_via="cli")
        org = created.organization.id
        from omnirelay.billing import service as billing

        billing.top_up(session, org, "10000000")
        for row in connections.list_connections(session, org, "sms"):
            connections.update(session, org, row.id, {"active": False})
        connections.create(
            session,
            org,
            channel="sms",
            provider="smpp",
            name="bench SMSC",
            settings={
                "host": "127.0.0.1",
                "port": smsc_port,
                "system_id": "bench",
                "password": "bench",
                "window": window,
            },
            senders=["BENCH"],
        )
        return created.api_token


def _delivered(db: Database) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(Message).where(Message.status == "delivered")
        return int(session.scalar(query) or 0)


def _peak_rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _load(
    base: str, token: str, n: int, concurrency: int
) -> tuple[float, dict[str, float], int]:
    sent_at: dict[str, float] = {}
    errors = 0
    counter = iter(range(n))

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for i in counter:
            text = f"bench {i}"
            sent_at[text] = time.perf_counter()
            body = {"sender": "BENCH", "phone": "79161234567", "text": text}
            async with session.post(f"{base}/v3/message/sendSMS", json=body) as r:
                await r.read()
                if r.status != 200:
                    errors += 1

    headers = {"Authorization": f"Token {token}"}
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, sent_at, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("-n", "--messages", type=int, default=5000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.concurrency = 200, 8
    arrivals: dict[str, float] = {}
    smsc = Smsc(receipt_delay=0.0)

    def arrived(rec: Received) -> None:
        arrivals.setdefault(rec.short_message.decode(), time.perf_counter())

    smsc.on_submit = arrived
    with smsc, database(args.db) as db:
        token = _org(db, smsc.port, args.window)
        port = free_port()
        env = {
            **os.environ,
            "OMNIRELAY_DATABASE_URL": db.url,
            "OMNIRELAY_LOG_LEVEL": "WARNING",
            "OMNIRELAY_RATE_LIMIT_REQUESTS": "1000000000",  # load, not the per-org limit
            "OMNIRELAY_WORKER_POLL_INTERVAL": "0.5",
            # The SMSC is on loopback, which the SSRF guard refuses unless allowed.
            "OMNIRELAY_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "omnirelay", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            import socket

            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("omnirelay serve did not start") from None
                    time.sleep(0.1)
            time.sleep(1.0)  # the session binds on the manager's first refresh
            print(
                f"== bench/smpp.py  db={args.db}  n={args.messages}  c={args.concurrency}  "
                f"window={args.window}"
            )
            t0 = time.perf_counter()
            took, sent_at, errors = asyncio.run(
                _load(f"http://127.0.0.1:{port}", token, args.messages, args.concurrency)
            )
            accepted = args.messages - errors
            while len(arrivals) < accepted and time.perf_counter() - t0 < 600:
                time.sleep(0.05)
            submitted_took = max(arrivals.values(), default=t0) - t0
            while _delivered(db) < accepted and time.perf_counter() - t0 < 600:
                time.sleep(0.2)
            delivered_took = time.perf_counter() - t0
            latency = [arrivals[k] - sent_at[k] for k in arrivals if k in sent_at]
            print(f"{'sendSMS accepted':<40} {accepted / took:>12,.1f} msg/s")
            print(
                f"{'submit_sm at the SMSC':<40} "
                f"{len(arrivals) / max(submitted_took, 1e-9):>12,.1f} msg/s"
            )
            print(
                f"{'HTTP request -> submit_sm p50':<40} {percentile(latency, 50) * 1000:>12,.1f} ms"
            )
            print(
                f"{'HTTP request -> submit_sm p99':<40} {percentile(latency, 99) * 1000:>12,.1f} ms"
            )
            print(f"{'delivered (receipts applied)':<40} {accepted / delivered_took:>12,.1f} msg/s")
            print(f"{'server peak RSS':<40} {_peak_rss(server.pid):>12,.1f} MB")
            duplicates = len(smsc.received) - len({r.short_message for r in smsc.received})
            print(f"{'duplicates at the SMSC':<40} {duplicates:>12,d}")
            if errors:
                print(f"!! {errors} requests failed")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
