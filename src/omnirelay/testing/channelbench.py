"""The set-ups of bench/channels.py that are not a measurement: the peers, signed
webhooks per adapter, SMTP clients and web chat visitors (bench/ holds only what runs)."""

from __future__ import annotations

import json
import queue
import secrets
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from omnirelay.callbacks import twilio
from omnirelay.callbacks.models import Call, Profile
from omnirelay.channels.base import Outbound, get_adapter
from omnirelay.channels.smtp.adapter import SmtpAdapter
from omnirelay.config import Settings
from omnirelay.connections import service as connections
from omnirelay.db import Database
from omnirelay.net.ssrf import parse_networks
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.smtp.listener import MailListener
from omnirelay.testing.smtppeer import SmtpPeer
from omnirelay.testing.telegram import TelegramPeer
from omnirelay.testing.twilio import TwilioPeer
from omnirelay.testing.viber import InfobipViberPeer, ViberBotPeer
from omnirelay.testing.vk import VkPeer

LOOPBACK = parse_networks("127.0.0.0/8")
PUBLIC_URL = "https://relay.example.com"
ORIGIN = "https://shop.example"
SECRET = "bench-secret"
HELD: list[bool] = []  # each "limit on" row: held within 5 %

Hook = Callable[[int], tuple[str, bytes, dict[str, str]]]


# --- sends ------------------------------------------------------------------------------


@contextmanager
def twilio_peer() -> Iterator[tuple[TwilioPeer, Callable[[int], None]]]:
    """The Twilio peer and ``originate(i)``: a call to a customer placed through it."""
    before = twilio.http.allowed_networks, twilio.public_url
    twilio.http.allowed_networks, twilio.public_url = LOOPBACK, PUBLIC_URL
    try:
        with TwilioPeer(lifetime=3600) as peer:
            settings = peer.settings()

            def originate(i: int) -> None:
                twilio.originate(settings, "CA" + secrets.token_hex(16), 1, f"7916{i:07d}")

            yield peer, originate
    finally:
        twilio.http.allowed_networks, twilio.public_url = before


@contextmanager
def smtp_sender(cap: int) -> Iterator[tuple[SmtpPeer, Callable[[int], None]]]:
    with SmtpPeer() as peer, SmtpAdapter(allowed_networks=LOOPBACK) as adapter:
        settings = adapter.validate_settings(peer.settings(max_connections=cap))

        def send(i: int) -> None:
            adapter.send(
                Outbound(
                    message_id=f"00000000-0000-0000-0000-{i % 10**12:012d}",
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

        yield peer, send


# --- inbound webhooks -------------------------------------------------------------------


@dataclass
class HookPeers:
    """The peers whose signed callbacks the inbound rows POST (never started: only their
    credentials and callback builders are used)."""

    telegram: TelegramPeer = field(default_factory=TelegramPeer)
    viber: ViberBotPeer = field(default_factory=ViberBotPeer)
    infobip: InfobipViberPeer = field(default_factory=InfobipViberPeer)
    vk: VkPeer = field(default_factory=VkPeer)
    twilio: TwilioPeer = field(default_factory=TwilioPeer)

    def __enter__(self) -> HookPeers:
        return self

    def __exit__(self, *exc: object) -> None:
        for peer in (self.telegram, self.viber, self.infobip, self.vk, self.twilio):
            peer.stop()

    def cases(self, db: Database, org: str) -> list[tuple[str, Hook]]:
        for name in ("telegram", "viber_bot", "infobip_viber", "vk"):  # their base_url: here
            setattr(get_adapter(name), "allowed_networks", LOOPBACK)  # noqa: B010
        ids = {}
        with db.transaction() as session:
            made = (
                ("telegram", "telegram", self.telegram.settings(
                    webhook_url=PUBLIC_URL, webhook_secret=SECRET), ["bench_bot"]),
                ("viber", "viber_bot", self.viber.settings(), ["Bot"]),
                ("viber", "infobip_viber", self.infobip.settings(), ["Omni"]),
                ("vk", "vk", self.vk.settings(), [str(self.vk.group_id)]),
            )  # fmt: skip
            for channel, provider, settings, senders in made:
                conn = connections.create(
                    session,
                    org,
                    channel=channel,
                    provider=provider,
                    name=provider,
                    settings=settings,
                    senders=senders,
                )
                ids[provider] = conn.id
            calls = _calls(session, org, self.twilio)
        tg, vb, ib, vk = self.telegram, self.viber, self.infobip, self.vk
        tg_headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        return [
            (
                "telegram",
                lambda i: (
                    f"/hooks/telegram/{ids['telegram']}",
                    json.dumps(tg.make_update(20_000_000 + i % 500, f"inbound {i}")).encode(),
                    tg_headers,
                ),
            ),
            (
                "viber_bot",
                lambda i: (
                    f"/hooks/viber_bot/{ids['viber_bot']}",
                    *vb.callback("message", sender_id=f"U{i % 500}=", text=f"inbound {i}"),
                ),
            ),
            (
                "infobip_viber",
                lambda i: (
                    f"/hooks/infobip_viber/{ids['infobip_viber']}",
                    ib.reply(f"7916{i % 500:07d}", "Omni", f"inbound {i}"),
                    ib.auth(),
                ),
            ),
            (
                "vk",
                lambda i: (
                    f"/hooks/vk/{ids['vk']}",
                    vk.message_new(1000 + i % 500, f"inbound {i}"),
                    {"Content-Type": "application/json"},
                ),
            ),
            ("twilio", lambda i: _status_callback(self.twilio, calls[i % len(calls)])),
        ]


def _calls(session: Any, org: str, peer: TwilioPeer) -> list[str]:
    """A profile whose telephony is the Twilio peer, and 500 calls ringing through it."""
    profile = Profile(
        sid="PF" + secrets.token_hex(16), organization_id=org, name="bench",
        telephony=peer.settings(),
    )  # fmt: skip
    session.add(profile)
    calls = [
        Call(
            sid="CA" + secrets.token_hex(16), organization_id=org, profile_sid=profile.sid,
            option_sid="OP" + "0" * 32, number=f"7916{i:07d}", status="calling", attempts=1,
        )
        for i in range(500)
    ]  # fmt: skip
    session.add_all(calls)
    return [c.sid for c in calls]


def _status_callback(peer: TwilioPeer, call: str) -> tuple[str, bytes, dict[str, str]]:
    """A signed ``in-progress`` (answered) callback of the customer's leg, as Twilio's."""
    url = twilio.callback_url(call, 1, "customer")
    params = {
        "AccountSid": peer.account_sid,
        "CallSid": "CA" + secrets.token_hex(16),
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "To": "+79161234567",
    }
    headers = {
        "X-Twilio-Signature": peer.sign(url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return url.removeprefix(PUBLIC_URL), urlencode(params).encode(), headers


# --- email in ---------------------------------------------------------------------------


def email_replies(db: Database, n: int) -> tuple[float, list[float], int, float]:
    """n replies handed to the SMTP listener by 8 clients (one session each, as an MTA
    keeps it), then their jobs run: seconds, latencies, jobs, seconds applying."""
    with db.transaction() as session:
        from omnirelay.tenancy import service as tenancy

        org = tenancy.create_organization(session, "Mail", created_via="cli").organization
        connections.create(
            session,
            org.id,
            channel="email",
            provider="smtp",
            name="Mail",
            settings={"host": "smtp.example.com", "from_address": "news@shop.example"},
            senders=[],
        )
    clients: list[smtplib.SMTP] = []
    local = threading.local()
    with MailListener(db, Settings(database_url="sqlite://"), port=0) as listener:

        def one(i: int) -> float:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = smtplib.SMTP("127.0.0.1", listener.port, timeout=30)
                clients.append(client)
            mail = EmailMessage()
            mail["From"] = f"user{i}@example.com"
            mail["To"] = "news@shop.example"
            mail["Subject"] = "Re: Your order"
            mail["In-Reply-To"] = f"<{i % 2**64:032x}@shop.example>"
            mail.set_content(f"Thanks, reply {i}")
            data = mail.as_bytes()
            t0 = time.perf_counter()
            client.sendmail(f"user{i}@example.com", ["news@shop.example"], data)
            return time.perf_counter() - t0

        one(-1)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            latencies = list(pool.map(one, range(n)))
        seconds = time.perf_counter() - t0
        for client in clients:
            client.quit()
    t0 = time.perf_counter()
    done = Worker(db, tasks).run_until_idle(max_jobs=10 * n)
    return seconds, latencies, done, time.perf_counter() - t0


# --- web chat ---------------------------------------------------------------------------


@dataclass
class Visitor:
    ws: WebSocketTestSession
    visitor: str  # the id the adapter addresses (the token's first part)


@contextmanager
def visitors(client: TestClient, key: str, k: int) -> Iterator[list[Visitor]]:
    with ExitStack() as stack:
        out = []
        for _ in range(k):
            ws = stack.enter_context(
                client.websocket_connect(f"/webchat/ws?key={key}", headers={"origin": ORIGIN})
            )
            hello = ws.receive_json()
            assert hello["type"] == "welcome", hello
            out.append(Visitor(ws, str(hello["visitor"]).split(".")[0]))
        yield out


class Collector:
    """Reads every visitor's socket in a thread of its own until n messages arrived; the
    latency of each from ``sent`` (message id -> when the adapter was called)."""

    def __init__(self, socks: list[Visitor], n: int) -> None:
        self.n = n
        self.sent: dict[str, float] = {}
        self.arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
        self._got: list[tuple[str, float]] = []
        self.threads = [threading.Thread(target=self._read, args=(s,), daemon=True) for s in socks]
        self.share = [n // len(socks) + (i < n % len(socks)) for i in range(len(socks))]
        for thread, _ in zip(self.threads, socks, strict=True):
            thread.start()

    def _read(self, sock: Visitor) -> None:
        index = next(s for s, t in enumerate(self.threads) if t is threading.current_thread())
        for _ in range(self.share[index]):
            frame = sock.ws.receive_json()
            if frame.get("type") == "message":  # id: wc:<message id>:<try>
                self.arrivals.put((str(frame["id"]).split(":")[1], time.perf_counter()))

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self._got) < self.n:
            self._got.append(self.arrivals.get(timeout=max(0.1, deadline - time.monotonic())))
        for thread in self.threads:
            thread.join(timeout)

    def latencies(self) -> list[float]:
        return [at - self.sent[mid] for mid, at in self._got]


def visitor_messages(socks: list[Visitor], n: int) -> tuple[float, list[float]]:
    """n visitor messages, the sockets in parallel; each waits for its ack (stored)."""

    def run(index: int) -> list[float]:
        sock, out = socks[index], []
        for i in range(index, n, len(socks)):
            t0 = time.perf_counter()
            sock.ws.send_json({"type": "message", "id": f"c{i}", "text": f"question {i}"})
            answer = sock.ws.receive_json()
            assert answer == {"type": "ack", "id": f"c{i}"}, answer
            out.append(time.perf_counter() - t0)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(socks)) as pool:
        latencies = [x for part in pool.map(run, range(len(socks))) for x in part]
    return time.perf_counter() - t0, latencies
