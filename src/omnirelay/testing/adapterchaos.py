"""The chaos benchmark's fault per adapter (issue 16): each provider's local peer drops a
share of the connections and answers another share with its 500 (SMTP: a dropped
connection or a 451), at random, while the dispatch drain sends accepted messages through
the adapter; then every accepted message must have been taken by its provider (the peer
has it, the status is ``sent`` or later) and none lost. Run by bench/chaos.py after its
kill -9 test, in process on a fresh database (no kills: the faults are the provider's).

Then the call-back telephony's fault (testing/twiliochaos.py): call-backs placed through
/3.0 against a Twilio peer that drops and fails Calls.json and the bridge at random.

A lost message: accepted, and after the wait neither final nor sent (still waiting for a
try), or sent while the peer never received it; one given up (its tries used up by
faults: a final status other than delivered) fails the run too. ``sent`` is where a
provider with delivery reports (Viber) leaves a message until its report comes; the
peers send none here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

import omnirelay.tasks  # noqa: F401  (registers the job handlers the worker runs)
from omnirelay.billing import service as billing
from omnirelay.channels.base import get_adapter
from omnirelay.connections import service as connections
from omnirelay.contacts.models import Contact
from omnirelay.db import Database
from omnirelay.drain import Drain
from omnirelay.messaging import service as messaging
from omnirelay.messaging import validation
from omnirelay.messaging.dispatch import DispatchStep
from omnirelay.messaging.models import Message
from omnirelay.messaging.pipeline import FINAL
from omnirelay.net.ssrf import parse_networks
from omnirelay.queue.registry import tasks
from omnirelay.queue.worker import Worker
from omnirelay.tenancy import service as tenancy
from omnirelay.testing import twiliochaos
from omnirelay.testing.bench import peak_rss_mb
from omnirelay.testing.httppeer import Chaos
from omnirelay.testing.smtppeer import SmtpPeer
from omnirelay.testing.telegram import TelegramPeer
from omnirelay.testing.viber import InfobipViberPeer, ViberBotPeer
from omnirelay.testing.vk import VkPeer

LOOPBACK = parse_networks("127.0.0.0/8")
PROVIDERS = ("telegram", "viber_bot", "infobip_viber", "vk", "smtp")


@dataclass
class Case:
    provider: str
    channel: str
    method: str
    peer: Any
    settings: dict[str, Any]
    senders: list[str]
    body: Callable[[int], dict[str, Any]]  # the /v3 body of message i
    contact: Callable[[int], dict[str, str]]  # the recipient's contact fields
    received: Callable[[], int]  # messages the peer took
    org: str = ""
    ids: tuple[str, ...] = ()
    chaos: Chaos | None = None


def _phone(i: int) -> str:
    return f"7916{i:07d}"


def _cases(stack: ExitStack) -> list[Case]:
    tg = stack.enter_context(TelegramPeer(lifetime=3600))
    vb = stack.enter_context(ViberBotPeer(lifetime=3600))
    ib = stack.enter_context(InfobipViberPeer(lifetime=3600))
    vk = stack.enter_context(VkPeer(lifetime=3600))
    mail = stack.enter_context(SmtpPeer())
    for i in range(100_000, 100_000 + 10_000):
        tg.start_chat(i)
    return [
        Case("telegram", "telegram", "sendTelegram", tg, tg.settings(), ["bot"],
             lambda i: {"phone": _phone(i), "text": f"tg {i}"},
             lambda i: {"telegram_id": str(100_000 + i)}, lambda: len(tg.sent)),
        Case("viber_bot", "viber", "sendViber", vb, vb.settings(rate_limit=0), ["Bot"],
             lambda i: {"phone": _phone(i), "sender": "Bot", "text": f"vb {i}"},
             lambda i: {"viber_id": f"U{i}="}, lambda: len(vb.messages)),
        Case("infobip_viber", "viber", "sendViber", ib, ib.settings(rate_limit=0), ["Omni"],
             lambda i: {"phone": _phone(i), "sender": "Omni", "text": f"ib {i}"},
             lambda i: {}, lambda: len(ib.messages)),
        Case("vk", "vk", "sendVK", vk, vk.settings(rate_limit=0), [str(vk.group_id)],
             lambda i: {"phone": _phone(i), "group": vk.group_id, "text": f"vk {i}"},
             lambda i: {"vk_id": str(5_550_000 + i)}, lambda: len(vk.messages)),
        Case("smtp", "email", "sendEmail", mail, mail.settings(), [],
             lambda i: {"email": f"user{i}@example.com", "subject": "Order", "text": f"m {i}"},
             lambda i: {}, lambda: len(mail.messages)),
    ]  # fmt: skip


def _accept(db: Database, case: Case, n: int) -> None:
    with db.transaction() as session:
        created = tenancy.create_organization(session, f"Chaos {case.provider}", created_via="cli")
        case.org = org = created.organization.id
        billing.top_up(session, org, "10000000")
        for row in connections.list_connections(session, org, case.channel):
            connections.update(session, org, row.id, {"active": False})  # the sandbox one
        connections.create(
            session,
            org,
            channel=case.channel,
            provider=case.provider,
            name=f"chaos {case.provider}",
            settings=case.settings,
            senders=case.senders,
        )
        now = datetime.now(UTC)
        session.add_all(
            Contact(
                organization_id=org,
                phone="+" + _phone(i),
                created_at=now,
                updated_at=now,
                **case.contact(i),
            )
            for i in range(n)
        )
    now = datetime.now(UTC)
    rules = validation.Rules(default_region=None)
    items = [
        (case.org, validation.single(case.method, case.channel, case.body(i), rules, now))
        for i in range(n)
    ]
    with db.transaction() as session:
        outcomes = messaging.accept_bulk(session, items, now)
    assert all(o.id is not None for o in outcomes), [o.error for o in outcomes if o.id is None]
    case.ids = tuple(str(o.id) for o in outcomes)


def _statuses(db: Database, case: Case) -> Counter[str]:
    with db.read() as session:
        rows = session.scalars(select(Message.status).where(Message.organization_id == case.org))
        return Counter(rows)


@contextmanager
def _loopback() -> Iterator[None]:
    """The registered adapters may reach the peers on 127.0.0.1 for the run."""
    before = {p: getattr(get_adapter(p), "allowed_networks", None) for p in PROVIDERS}
    for provider in PROVIDERS:
        setattr(get_adapter(provider), "allowed_networks", LOOPBACK)  # noqa: B010
    try:
        yield
    finally:
        for provider, nets in before.items():
            setattr(get_adapter(provider), "allowed_networks", nets)  # noqa: B010


def run(db: Database, n: int, *, seed: int, share: float, wait: float) -> bool:
    """n messages per adapter through peers that fault ``share`` of the sends (half
    dropped, half 500); prints a line per adapter; True when none was lost."""
    print(f"== adapter faults: {n} messages per adapter, {share:.0%} of the sends faulted")
    with ExitStack() as stack, _loopback():
        cases = _cases(stack)
        for k, case in enumerate(cases):
            _accept(db, case, n)
            case.chaos = case.peer.chaos = Chaos(share / 2, share / 2, seed + k)
        started = time.monotonic()
        drain = Drain(db, DispatchStep(), batch=64, poll_interval=0.05)
        worker = Worker(db, tasks, poll_interval=0.1)
        drain.start()
        worker.start()
        try:
            while time.monotonic() - started < wait:
                waiting = sum(
                    sum(c for s, c in _statuses(db, case).items() if s not in FINAL and s != "sent")
                    for case in cases
                )
                if not waiting:
                    break
                time.sleep(0.2)
        finally:
            drain.stop()
            worker.stop()
        took = time.monotonic() - started
        ok = True
        for case in cases:
            statuses = _statuses(db, case)
            taken = sum(statuses[s] for s in ("sent", "delivered", "read"))
            failed = sum(c for s, c in statuses.items() if s in FINAL) - statuses["delivered"]
            failed -= statuses["read"]
            waiting = n - taken - failed  # neither final nor sent: lost
            at_peer = case.received()
            unseen = max(0, taken - at_peer)  # sent, but the provider never got it: lost
            ok = ok and waiting == 0 and unseen == 0 and failed == 0
            assert case.chaos is not None
            print(
                f"   {case.provider:<14} accepted {n:>4}  taken by the provider {taken:>4} "
                f"(at the peer {at_peer}, {at_peer - taken:+d} resent)  failed {failed}  "
                f"faults: {case.chaos.dropped} dropped, {case.chaos.errors} x 500  "
                f"statuses {dict(statuses)}  LOST {waiting + unseen}"
            )
    print(f"   settled in {took:.1f} s")
    # Call-back telephony: call-backs, not messages (a fault in Calls.json and the bridge).
    ok = twiliochaos.run(db, max(5, n // 4), seed=seed, share=share, wait=wait) and ok
    print(f"   peak RSS {peak_rss_mb():.0f} MB")
    print("   RESULT:", "PASS, 0 lost per adapter" if ok else "FAIL, lost or given up")
    return ok
