"""Telegram against the local Bot API peer (omnirelay/testing/telegram.py), on loopback.

1. sends/s: N sendTelegram messages accepted (the accept service, chat ids found from
   the contacts' phones), dispatched by the dispatch drain through the ``telegram``
   adapter to the peer; with Telegram's documented limit off (``rate_limit`` 0) and on
   (30 messages/s per bot): rate as the peer saw it (held: at most 5 % over the limit),
   the busiest 1-second window, p50/p99 from accept to the peer receiving the send.
2. inbound webhooks applied/s: ``omnirelay serve`` on the same database; updates POSTed
   to /hooks/telegram/<id> with the secret token by C concurrent clients; applied/s until
   every one is an inbound message; p50/p99 of the webhook answer; the server's peak RSS.

    python bench/channels_telegram.py [--db sqlite|postgresql] [-n N] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC, datetime

import aiohttp
from sqlalchemy import func, select

import omnirelay.tasks  # noqa: F401  (registers the job handlers)
from omnirelay.billing import service as billing
from omnirelay.channels.base import get_adapter
from omnirelay.channels.telegram import DEFAULT_RATE, TelegramAdapter
from omnirelay.connections import service as connections
from omnirelay.contacts.models import Contact
from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.messaging import service as messaging
from omnirelay.messaging import validation
from omnirelay.messaging.dispatch import DispatchStep
from omnirelay.messaging.models import InboundMessage
from omnirelay.net.ssrf import parse_networks
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import Omnirelay, database, peak_rss_mb, percentile, proc_stats
from omnirelay.testing.telegram import TelegramPeer

SECRET = "bench-secret"
FIRST_CHAT = 10_000_000


def _org(db: Database, peer: TelegramPeer, n: int, rate: float) -> tuple[str, int]:
    """An organization with a telegram connection at the peer and n linked contacts."""
    with db.transaction() as session:
        created = tenancy.create_organization(session, f"Bench {rate}", created_via="cli")
        org = created.organization.id
        billing.top_up(session, org, "10000000")
        for row in connections.list_connections(session, org, "telegram"):
            connections.update(session, org, row.id, {"active": False})
        conn = connections.create(
            session,
            org,
            channel="telegram",
            provider="telegram",
            name="bench bot",
            settings=peer.settings(
                rate_limit=rate,
                webhook_url="https://relay.example.com",
                webhook_secret=SECRET,
            ),
            senders=["bench_bot"],
        )
        now = datetime.now(UTC)
        session.add_all(
            Contact(
                organization_id=org,
                phone=f"+7916{i:07d}",
                telegram_id=str(FIRST_CHAT + i),
                created_at=now,
                updated_at=now,
            )
            for i in range(n)
        )
        return org, conn.id


def sends(db: Database, n: int, rate: float) -> dict[str, float]:
    adapter = get_adapter("telegram")
    assert isinstance(adapter, TelegramAdapter)
    adapter.allowed_networks = parse_networks("127.0.0.0/8")
    with TelegramPeer(lifetime=3600) as peer:
        for i in range(n):
            peer.start_chat(FIRST_CHAT + i)
        org, _ = _org(db, peer, n, rate)
        rules = validation.Rules(default_region=None)
        accepted_at: dict[str, float] = {}
        for start in range(0, n, 500):
            now = datetime.now(UTC)
            items = []
            for i in range(start, min(n, start + 500)):
                body = {"phone": f"7916{i:07d}", "text": f"bench {i}"}
                items.append((org, validation.single("sendTelegram", "telegram", body, rules, now)))
            with db.transaction() as session:
                outcomes = messaging.accept_bulk(session, items, now)
            at = time.monotonic()
            for i, outcome in zip(range(start, start + len(items)), outcomes, strict=True):
                assert outcome.id is not None, outcome.error
                accepted_at[str(FIRST_CHAT + i)] = at
        began = time.monotonic()
        drain = Drain(db, DispatchStep(), batch=256, poll_interval=0.05)
        worker = Worker(db, tasks, poll_interval=0.2)
        drain.start()
        worker.start()
        try:
            while len(peer.sent) < n:
                if time.monotonic() - began > 600:
                    raise SystemExit(f"only {len(peer.sent)} of {n} sends reached the peer")
                time.sleep(0.05)
        finally:
            drain.stop()
            worker.stop()
        times = list(peer.sent_at)
        latencies = [
            t - accepted_at[str(body["chat_id"])]
            for (_, body), t in zip(peer.sent, times, strict=True)
        ]
    span = times[-1] - times[0]
    busiest, j = 0, 0
    for i, t in enumerate(times):  # the most sends in any 1-second window
        while times[j] <= t - 1.0:
            j += 1
        busiest = max(busiest, i - j + 1)
    return {
        "rate": (n - 1) / span if span > 0 else float("inf"),
        "busiest": float(busiest),
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "rss": peak_rss_mb(),
    }


async def _post(url: str, updates: list[dict[str, object]], concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = iter(updates)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}

    async def client(session: aiohttp.ClientSession) -> None:
        for update in queue:
            t = time.monotonic()
            async with session.post(url, data=json.dumps(update), headers=headers) as r:
                if r.status != 200:
                    raise SystemExit(f"webhook answered {r.status}: {await r.text()}")
            latencies.append(time.monotonic() - t)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return latencies


def _inbound(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def webhooks(db: Database, n: int, concurrency: int) -> dict[str, float]:
    with TelegramPeer(lifetime=3600) as peer:
        _, connection_id = _org(db, peer, min(n, 1000), 0)
        updates = [peer.make_update(FIRST_CHAT + i % 1000, f"inbound {i}") for i in range(n)]
        env = {"OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
        with Omnirelay(str(db.engine.url.render_as_string(hide_password=False)), **env) as server:
            url = f"{server.base}/hooks/telegram/{connection_id}"
            began = time.monotonic()
            latencies = asyncio.run(_post(url, updates, concurrency))
            while _inbound(db) < n:
                if time.monotonic() - began > 600:
                    raise SystemExit(f"only {_inbound(db)} of {n} updates applied")
                time.sleep(0.05)
            took = time.monotonic() - began
            rss = proc_stats(server.procs["serve"].pid)[0]
    return {
        "rate": n / took,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "rss": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("-n", type=int, default=3000, help="sends with the limit off")
    parser.add_argument("--limited", type=int, default=900, help="sends with the limit on")
    parser.add_argument("--inbound", type=int, default=3000, help="webhook updates")
    parser.add_argument("-c", type=int, default=16, help="concurrent webhook clients")
    parser.add_argument("--smoke", action="store_true", help="a few seconds")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.limited, args.inbound, args.c = 100, 45, 100, 4
    os.environ.setdefault("OMNIRELAY_LOG_LEVEL", "WARNING")
    print(f"telegram, {args.db}")
    with database(args.db) as db:
        off = sends(db, args.n, 0)
        print(
            f"  sends, no limit:   {args.n} sends  {off['rate']:8.1f}/s  "
            f"p50 {off['p50']:.0f} ms  p99 {off['p99']:.0f} ms  peak RSS {off['rss']:.0f} MB"
        )
    with database(args.db) as db:
        on = sends(db, args.limited, DEFAULT_RATE)
        # Held: the rate the peer saw is at most 5 % over the limit. The busiest 1-second
        # window is shown too: on a loaded machine it also measures thread wake-up jitter
        # between the limiter's slot and the request reaching the peer.
        held = on["rate"] <= DEFAULT_RATE * 1.05
        print(
            f"  sends, {DEFAULT_RATE:.0f}/s limit: {args.limited} sends  {on['rate']:8.1f}/s  "
            f"busiest second {on['busiest']:.0f}  p50 {on['p50']:.0f} ms  "
            f"p99 {on['p99']:.0f} ms  limit held within 5 %: {'yes' if held else 'NO'}"
        )
    with database(args.db) as db:
        hooks = webhooks(db, args.inbound, args.c)
        print(
            f"  inbound webhooks:  {args.inbound} updates  {hooks['rate']:8.1f} applied/s  "
            f"answer p50 {hooks['p50']:.1f} ms  p99 {hooks['p99']:.1f} ms  "
            f"server peak RSS {hooks['rss']:.0f} MB"
        )
    if not held:
        raise SystemExit("the rate limit was not held")


if __name__ == "__main__":
    main()
