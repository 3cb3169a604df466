"""Viber and VK adapters against their local peers.

Part 1, sends/s: each adapter's ``send`` (as the dispatch pool calls it: 32 threads)
against its peer, with the provider's rate limit off (``rate_limit: 0``) and on (the
documented figure, or omnirelay's default where the provider publishes none); "on" also
has the peer enforce that limit, so a send over it would be refused and counted.
Part 2, inbound callbacks/s: signed callbacks POSTed to /hooks (the app in process), each
verified, parsed and stored in its own transaction (statuses as provider-event jobs,
messages as inbound jobs); then the jobs applied by a worker.

    python bench/channels_vibervk.py [--db sqlite|postgresql] [--sends N] [--callbacks N] [--smoke]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

import omnirelay.tasks  # noqa: F401  (registers the job handlers)
from omnirelay.app import create_app
from omnirelay.channels.base import Outbound, RetriableError
from omnirelay.channels.infobip_viber import InfobipViberAdapter
from omnirelay.channels.viber_bot import ViberBotAdapter
from omnirelay.channels.vk import VkAdapter
from omnirelay.config import Settings
from omnirelay.connections import service as connections
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import database, peak_rss_mb, percentile
from omnirelay.testing.viber import InfobipViberPeer, ViberBotPeer
from omnirelay.testing.vk import VkPeer
from omnirelay.webhooks.ssrf import parse_networks

LOOPBACK = parse_networks("127.0.0.0/8")
THREADS = 32


@dataclass
class Run:
    rate: float  # sends a second, as the client saw them complete
    arrival_rate: float  # requests a second as they reached the peer, first to last
    busiest_second: int  # the most requests the peer saw in any one second
    p50: float
    p99: float
    retried: int  # sends answered "too many requests" by the peer, tried again


def _busiest(times: list[float]) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _sends(
    name: str, adapter: Any, peer: Any, settings: dict[str, Any], n: int, extra: dict[str, Any]
) -> Run:
    latencies: list[float] = []
    retried = 0

    def one(i: int) -> None:
        nonlocal retried
        message = Outbound(
            message_id=f"bench-{name}-{i}-{time.time_ns()}",
            channel="viber" if "viber" in name else "vk",
            phone="79161234567",
            sender="Bench",
            text=f"message {i}",
            settings=settings,
            extra=extra,
        )
        started = time.perf_counter()
        while True:
            try:
                adapter.send(message)
                break
            except RetriableError as exc:  # as the dispatch drain would, later
                retried += 1
                time.sleep(exc.delay or 0.05)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    arrivals = sorted(r.at for r in peer.requests if r.method == "POST")
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return Run(
        n / elapsed,
        (len(arrivals) - 1) / span,
        _busiest(arrivals),
        percentile(latencies, 50),
        percentile(latencies, 99),
        retried,
    )


def part_sends(n: int) -> None:
    print(f"sends: {n} per run, {THREADS} threads")
    cases: list[tuple[str, Callable[..., Any], Callable[..., Any], float, dict[str, Any]]] = [
        ("viber_bot", ViberBotAdapter, ViberBotPeer, 100.0, {"recipient": "U1="}),
        ("infobip_viber", InfobipViberAdapter, InfobipViberPeer, 100.0, {}),
        ("vk", VkAdapter, VkPeer, 20.0, {"recipient": 5550001}),
    ]
    for name, make_adapter, make_peer, documented, extra in cases:
        for limit in (0.0, documented):
            count = n if limit == 0 else max(10, min(n, int(documented * 5)))
            adapter = make_adapter(allowed_networks=LOOPBACK)
            with make_peer(rate_limit=limit or None) as peer:
                settings = adapter.validate_settings(peer.settings(rate_limit=limit))
                run = _sends(name, adapter, peer, settings, count, extra)
            adapter.close()
            label = f"limit {limit:g}/s" if limit else "limit off"
            held = ""
            if limit:
                held = (
                    f", at the peer {run.arrival_rate:.1f}/s "
                    f"({100 * (run.arrival_rate - limit) / limit:+.1f} % of the limit), "
                    f"busiest second {run.busiest_second}, retried {run.retried}"
                )
            print(
                f"  {name:14s} {label:14s} {count:5d} sends {run.rate:8.1f}/s "
                f"p50 {run.p50 * 1000:6.1f} ms p99 {run.p99 * 1000:6.1f} ms{held}"
            )


def part_callbacks(engine: str, n: int) -> None:
    with database(engine) as db:
        with db.transaction() as session:
            org = tenancy.create_organization(session, "Bench", created_via="cli").organization
            viber_peer, vk_peer = ViberBotPeer(), VkPeer()
            bot = connections.create(
                session,
                org.id,
                channel="viber",
                provider="viber_bot",
                name="bot",
                settings=viber_peer.settings(),
                senders=["Bot"],
            )
            community = connections.create(
                session,
                org.id,
                channel="vk",
                provider="vk",
                name="vk",
                settings=vk_peer.settings(),
                senders=[str(vk_peer.group_id)],
            )
            bot_id, vk_id = bot.id, community.id
        settings = Settings(database_url=db.url, rate_limit_requests=10**9)
        worker = Worker(db, tasks)
        cases = (
            # Inbound messages: each a messages.inbound job (the user becomes a contact).
            (
                "vk message_new",
                lambda i: (
                    f"/hooks/vk/{vk_id}",
                    vk_peer.message_new(1000 + i % 50, f"text {i}"),
                    {"Content-Type": "application/json"},
                ),
                True,
            ),
            # Statuses: each a provider-event job; ids no attempt has, so the jobs are not
            # applied here (they would wait for an attempt), only stored.
            (
                "viber_bot delivered",
                lambda i: (
                    f"/hooks/viber_bot/{bot_id}",
                    *viber_peer.callback("delivered", message_token=i + 1, user_id="U1="),
                ),
                False,
            ),
        )
        with TestClient(create_app(settings, db=db)) as client:
            for name, make, apply in cases:
                bodies = [make(i) for i in range(n)]
                latencies = []
                started = time.perf_counter()
                for path, body, headers in bodies:
                    t = time.perf_counter()
                    answer = client.post(path, content=body, headers=headers)
                    assert answer.status_code == 200, answer.text
                    latencies.append(time.perf_counter() - t)
                elapsed = time.perf_counter() - started
                print(
                    f"  {engine} {name:20s} {n:5d} callbacks stored {n / elapsed:8.1f}/s "
                    f"p50 {percentile(latencies, 50) * 1000:6.1f} ms "
                    f"p99 {percentile(latencies, 99) * 1000:6.1f} ms"
                )
                if apply:
                    started = time.perf_counter()
                    ran = worker.run_until_idle(max_jobs=n)
                    rate = ran / (time.perf_counter() - started)
                    print(f"  {engine} {name:20s} {ran:5d} jobs applied {rate:8.1f}/s (one worker)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--callbacks", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="small and quick (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.sends, args.callbacks = 60, 50
    part_sends(args.sends)
    print(f"callbacks ({args.db}):")
    part_callbacks(args.db, args.callbacks)
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
