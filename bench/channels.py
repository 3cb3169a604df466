"""Channel adapters against their local peers (issue 16): sends/s of each provider
adapter, and inbound messages applied/s. One row per adapter and direction; each prints
rate, p50/p99 and the process's peak RSS.

    python bench/channels.py [--db sqlite|postgresql] [--only email] [-n N] [--smoke]

email: the smtp adapter -> testing/smtppeer.py (aiosmtpd, STARTTLS + AUTH), 32 sending
threads as the dispatch pool runs, with max_connections 1 and 4 (SMTP has no documented
rate limit; the connection cap is the throttle). Inbound: replies handed to omnirelay's
SMTP listener by 8 SMTP clients, each committed (a messages.inbound job) before its 250.
"""

from __future__ import annotations

import argparse
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

from sqlalchemy import func, select

import omnirelay.tasks  # noqa: F401  (registers the job handlers)
from omnirelay.channels.base import Outbound
from omnirelay.channels.smtp.adapter import SmtpAdapter
from omnirelay.config import Settings
from omnirelay.connections import service as connections
from omnirelay.messaging.models import InboundMessage
from omnirelay.net.ssrf import parse_networks
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.smtp.listener import MailListener
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import database, peak_rss_mb, percentile
from omnirelay.testing.smtppeer import SmtpPeer

LOOPBACK = parse_networks("127.0.0.0/8")
SENDERS = 32  # the dispatch drain's pool


def row(name: str, n: int, seconds: float, latencies: list[float], note: str = "") -> None:
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(
        f"{name:<34} {n:>6} in {seconds:6.2f} s = {n / seconds:8,.0f}/s   "
        f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms   peak RSS {peak_rss_mb():5.0f} MB {note}"
    )


def email_out(n: int, max_connections: int) -> None:
    with SmtpPeer() as peer, SmtpAdapter(allowed_networks=LOOPBACK) as adapter:
        settings = adapter.validate_settings(peer.settings(max_connections=max_connections))

        def one(i: int) -> float:
            t0 = time.perf_counter()
            adapter.send(
                Outbound(
                    message_id=f"00000000-0000-0000-0000-{i:012d}",
                    channel="email",
                    phone="",
                    sender=None,
                    text=f"Hello {i}, your order is on its way.",
                    settings=settings,
                    extra={
                        "email": f"user{i}@example.com",
                        "subject": "Your order",
                        "html": f"<p>Hello <b>{i}</b>, your order is on its way.</p>",
                    },
                )
            )
            return time.perf_counter() - t0

        one(-1)  # the loop, the first connection and its TLS handshake are not measured
        t0 = time.perf_counter()
        with ThreadPoolExecutor(SENDERS) as pool:
            latencies = list(pool.map(one, range(n)))
        seconds = time.perf_counter() - t0
        assert len(peer.messages) == n + 1, "the peer did not get every message"
        row(
            f"email out, max_connections {max_connections}",
            n,
            seconds,
            latencies,
            f"({peer.connections} SMTP connections)",
        )


def email_in(engine: str, n: int) -> None:
    with database(engine) as db:
        with db.transaction() as session:
            org = tenancy.create_organization(session, "Bench", created_via="cli").organization
            connections.create(
                session,
                org.id,
                channel="email",
                provider="smtp",
                name="Mail",
                settings={"host": "smtp.example.com", "from_address": "news@shop.example"},
                senders=[],
            )
        with MailListener(db, Settings(database_url="sqlite://"), port=0) as listener:
            local = threading.local()

            def one(i: int) -> float:
                # An MTA keeps its session for the next message: one per client thread.
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = smtplib.SMTP("127.0.0.1", listener.port, timeout=30)
                    clients.append(client)
                mail = EmailMessage()
                mail["From"] = f"user{i}@example.com"
                mail["To"] = "news@shop.example"
                mail["Subject"] = "Re: Your order"
                mail["In-Reply-To"] = f"<{i:032x}@shop.example>"
                mail.set_content(f"Thanks, reply {i}")
                data = mail.as_bytes()
                t0 = time.perf_counter()
                client.sendmail(f"user{i}@example.com", ["news@shop.example"], data)
                return time.perf_counter() - t0

            clients: list[smtplib.SMTP] = []
            one(-1)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                latencies = list(pool.map(one, range(n)))
            seconds = time.perf_counter() - t0
            for client in clients:
                client.quit()
            assert listener.outcomes["reply"] == n + 1
        row(f"email in ({engine}), accepted", n, seconds, latencies, "(committed before 250)")
        # The messages.inbound jobs those replies became: stored (and POSTed to reply URLs).
        worker = Worker(db, tasks)
        t0 = time.perf_counter()
        done = worker.run_until_idle(max_jobs=10 * n)
        seconds = time.perf_counter() - t0
        with db.read() as session:
            stored = session.scalar(select(func.count()).select_from(InboundMessage)) or 0
        assert stored == n + 1, f"{stored} inbound messages stored of {n + 1}"
        row(f"email in ({engine}), stored", done, seconds, [seconds / max(1, done)], "(jobs)")


def email(args: argparse.Namespace) -> None:
    email_out(args.n, 1)
    email_out(args.n, 4)
    email_in(args.db, max(10, args.n // 4))


ROWS: dict[str, Callable[[argparse.Namespace], None]] = {"email": email}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--only", choices=sorted(ROWS), action="append")
    parser.add_argument("-n", type=int, default=2000, help="sends per row")
    parser.add_argument("--smoke", action="store_true", help="a few messages, seconds")
    args = parser.parse_args()
    if args.smoke:
        args.n = 40
    for name in args.only or sorted(ROWS):
        ROWS[name](args)


if __name__ == "__main__":
    main()
