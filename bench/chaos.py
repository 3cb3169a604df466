"""The no-loss test (issue 8): kill -9 omnirelay under a steady load, restart it, and check
that every message that got a success answer reaches a final status and its final report.

omnirelay runs as a user runs it, as subprocesses on a fresh database: on SQLite one
``omnirelay serve`` (HTTP and workers in one process), or with ``--workers 1`` ``serve
--no-workers`` beside one ``omnirelay worker`` (ADR 34); on PostgreSQL ``omnirelay serve``
plus ``--workers`` ``omnirelay worker`` processes. The organization sends SMS over an
``smpp`` connection to an SMSC on loopback (``omnirelay.testing.smsc``, built on
``smpp34``), and every message carries a ``report`` URL of a receiver in this process
that records every POST.

From this process a load driver posts ``/v3/message/sendSMS`` at a fixed rate with unique
texts. A share of the requests (``--idempotent``) carries an ``Idempotency-Key`` and is
retried, with the same key and body, after a connection error or a 5xx, as a careful
client does; the others are sent once. ``--kills`` times a process gets SIGKILL (its whole
process group) at a random moment (``random.Random(--seed)``) 0.5..``--gap`` s after the
previous kill recovered, and is started again after 0.5..2 s. A kill has recovered when
the server answers again and (unless ``--quick``) the SMSC receives submit_sm again: the
killed process may have held the SMPP session, which another process takes over only when
its lease lapses (30 s). On PostgreSQL each kill hits the server, a worker, or both, and
each of them at least once. The load goes on for ``--tail`` s after the last recovery.

When the load is over the test waits (at most ``--wait`` seconds) until every accepted
message has a final status in the database, the receiver has a final report for each, and
no webhook event is left pending; then it prints:

- accepted: ids answered with ``{"result": "success"}`` (replays of a key included once);
- lost: accepted ids with no final status (must be 0); reports lost: accepted ids whose
  final report never reached the receiver (must be 0); not delivered: accepted ids whose
  final status is not ``delivered`` (must be 0: the SMSC delivers every message, so
  omnirelay gave them up);
- duplicates: submit_sm of one text received more than once by the SMSC, webhook
  deliveries with a ``webhook-id`` already received, one status of one message emitted
  twice (different ``webhook-id``), and messages stored twice for one request;
- recovery: from restarting a killed server to its first successful answer (p50, max),
  and from a kill to the SMSC receiving submit_sm again;
- the peak RSS of the omnirelay processes.

``--keep-logs`` keeps the processes' logs and ``submits.tsv`` (every submit_sm the SMSC
received, with the kills) in a directory it prints; a failed run always keeps them.

It exits 1 when any of the three is not 0, 0 otherwise. Duplicates are reported, not failed on:
delivery is at-least-once by design (docs/smpp.md, docs/webhooks.md).

    python bench/chaos.py [--db sqlite|postgresql] [--kills K] [--rate R] [--gap S]
                          [--seed N] [--workers W] [--quick] [--keep-logs] [--smoke]

Then, on another fresh database, one fault per adapter of issue 16 (testing/adapterchaos.py):
each provider's local peer drops connections and answers its 500 at random while
``--adapter-messages`` messages per adapter go through it; 0 lost per adapter, printed.
``--adapters-only`` runs just that part.

``make chaos`` runs it on both engines; ``make bench-smoke`` runs ``--smoke`` (2 kills).
Figures and how to read them: docs/chaos.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from omnirelay.billing import service as billing
from omnirelay.connections import service as connections
from omnirelay.connections.models import ConnectionLease
from omnirelay.db import Database
from omnirelay.messaging.models import Message
from omnirelay.messaging.pipeline import FINAL
from omnirelay.queue.models import Job
from omnirelay.tenancy import service as tenancy
from omnirelay.testing import adapterchaos
from omnirelay.testing.bench import database, percentile
from omnirelay.testing.smsc import Received, Smsc, free_port
from omnirelay.webhooks.models import WebhookEvent

PHONE = "79161234567"
SENDER = "CHAOS"


# --- set-up ---------------------------------------------------------------------------


def _org(db: Database, smsc_port: int) -> str:
    """An organization whose SMS go to the SMSC; returns its api token."""
    with db.transaction() as session:
        created = tenancy.create_organization(session, "Chaos", created_via="cli")
        org = created.organization.id
        billing.top_up(session, org, "10000000")
        for row in connections.list_connections(session, org, "sms"):
            connections.update(session, org, row.id, {"active": False})  # the sandbox one
        connections.create(
            session,
            org,
            channel="sms",
            provider="smpp",
            name="chaos SMSC",
            settings={
                "host": "127.0.0.1",
                "port": smsc_port,
                "system_id": "chaos",
                "password": "chaos",
                "window": 20,
            },
            senders=[SENDER],
        )
        assert created.api_token is not None
        return created.api_token


def _reader(db: Database) -> Engine:
    """An engine for the checks that never takes SQLite's write lock (the server's
    ``Database`` begins every transaction IMMEDIATE)."""
    if db.is_sqlite:
        return create_engine(db.url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 30})
    return create_engine(db.url, isolation_level="AUTOCOMMIT", pool_size=2)


def _vm_hwm(pid: int) -> float:
    """Peak RSS of a live process in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- the omnirelay processes ------------------------------------------------------------


@dataclass
class Proc:
    role: str  # "serve", "worker1", ...
    popen: subprocess.Popen[bytes]


class Cluster:
    """The omnirelay processes, each in its own process group so that a kill takes every
    child with it, and all of them stopped on exit."""

    def __init__(
        self, env: dict[str, str], port: int, workers: int, logdir: Path, *, http_only: bool
    ) -> None:
        self.env = env
        self.port = port
        self.http_only = http_only  # serve --no-workers (SQLite's two processes, ADR 34)
        self.roles = ["serve"] + [f"worker{i}" for i in range(1, workers + 1)]
        self.logdir = logdir
        self.procs: dict[str, Proc] = {}
        self.peak_rss = 0.0
        self._logs: list[TextIO] = []

    def start(self, role: str) -> None:
        if role == "serve":
            args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
            if self.http_only:
                args.append("--no-workers")
        else:
            args = ["worker"]
        log = open(self.logdir / f"{role}.log", "a")  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        log.write(f"--- start {time.strftime('%H:%M:%S')}\n")
        log.flush()
        popen = subprocess.Popen(
            [sys.executable, "-m", "omnirelay", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[role] = Proc(role, popen)

    def kill(self, role: str) -> int:
        """SIGKILL the process group of ``role``; returns the pid that was killed."""
        proc = self.procs.pop(role)
        pid = proc.popen.pid
        self.peak_rss = max(self.peak_rss, _vm_hwm(pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        proc.popen.wait(30)
        return pid

    def dead(self) -> list[str]:
        """Roles whose process ended by itself (a crash we did not cause)."""
        return [role for role, p in self.procs.items() if p.popen.poll() is not None]

    def sample_rss(self) -> None:
        for proc in self.procs.values():
            self.peak_rss = max(self.peak_rss, _vm_hwm(proc.popen.pid))

    def stop(self) -> None:
        self.sample_rss()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(10)
        self.procs.clear()
        for log in self._logs:
            log.close()


def _wait_port(port: int, cluster: Cluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or cluster.dead():
                raise SystemExit("omnirelay serve did not start") from None
            time.sleep(0.1)


# --- the report receiver ----------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    at: float  # time.monotonic()
    webhook_id: str
    message_id: str
    status: str


class Receiver:
    """Records every POST to /report and answers 200."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.final: set[str] = set()  # message ids with a final report
        self.bad = 0  # bodies that were not a status report
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data: dict[str, Any] = json.loads(body)
            report = Report(
                time.monotonic(),
                request.headers.get("webhook-id", ""),
                str(data["id"]),
                str(data["status"]),
            )
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return web.Response(text="ok")
        self.reports.append(report)
        if report.status in FINAL:
            self.final.add(report.message_id)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/report", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/report"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# --- the load ---------------------------------------------------------------------------


@dataclass
class Load:
    """What the clients saw."""

    offered: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # message id -> text
    ids_by_text: dict[str, str] = field(default_factory=dict)
    replayed: int = 0  # answers with Idempotent-Replayed: true
    retries: int = 0  # requests sent again with the same key
    not_accepted: int = 0  # requests that never got a success answer
    errors: Counter[str] = field(default_factory=Counter)  # every failed try, by kind
    refused: Counter[str] = field(default_factory=Counter)  # 4xx answers, by body
    server_errors: Counter[str] = field(default_factory=Counter)  # 5xx answers, by body
    last_success: float = 0.0  # time.monotonic() of the latest success answer


async def _send_one(
    http: aiohttp.ClientSession,
    url: str,
    token: str,
    load: Load,
    text: str,
    body: bytes,
    key: str | None,
    give_up_at: list[float],
) -> None:
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    delay = 0.25
    while True:
        kind: str
        try:
            async with http.post(url, data=body, headers=headers) as r:
                raw = await r.read()
                if r.status == 200:
                    answer = json.loads(raw)
                    if answer.get("result") == "success":
                        message_id = str(answer["id"])
                        if r.headers.get("Idempotent-Replayed") == "true":
                            load.replayed += 1
                        load.accepted[message_id] = text
                        load.ids_by_text[text] = message_id
                        load.last_success = time.monotonic()
                        return
                    kind = "200 without success"
                elif r.status >= 500:
                    kind = f"HTTP {r.status}"
                    load.server_errors[f"{r.status} {raw.decode(errors='replace')[:100]}"] += 1
                else:
                    load.refused[raw.decode(errors="replace")[:120]] += 1
                    load.not_accepted += 1
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            kind = type(exc).__name__
        load.errors[kind] += 1
        # give_up_at is read each time: it moves once the load has ended.
        if key is None or time.monotonic() + delay > give_up_at[0]:
            load.not_accepted += 1
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
        load.retries += 1


async def _drive(
    base: str,
    token: str,
    report_url: str,
    load: Load,
    rate: float,
    stop: asyncio.Event,
    idempotent: float,
    rng: random.Random,
    tag: str,
) -> None:
    """Open loop: one request every 1/rate s whatever the answers, like independent
    clients, until ``stop`` is set."""
    url = f"{base}/v3/message/sendSMS"
    # A new TCP connection per request: after a kill, pooled keep-alive connections would
    # fail requests to the restarted server that never reached it.
    connector = aiohttp.TCPConnector(limit=256, force_close=True)
    timeout = aiohttp.ClientTimeout(total=40)  # > OMNIRELAY_ACCEPT_TIMEOUT_SECONDS (503)
    give_up_at = [float("inf")]
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        i = 0
        while not stop.is_set():
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            text = f"chaos {tag} {i}"
            body = json.dumps(
                {"sender": SENDER, "phone": PHONE, "text": text, "report": report_url}
            ).encode()
            key = f"chaos-{tag}-{i}" if rng.random() < idempotent else None
            load.offered += 1
            tasks.append(
                asyncio.create_task(_send_one(http, url, token, load, text, body, key, give_up_at))
            )
            i += 1
        # Retries go on a little after the load, then give up.
        give_up_at[0] = time.monotonic() + 30
        await asyncio.gather(*tasks)


# --- kills ------------------------------------------------------------------------------


@dataclass
class Kill:
    at: float  # seconds into the load
    roles: list[str]
    pids: list[int]
    pause: float
    killed_at: float  # time.monotonic()
    smpp_owner: bool  # a killed process held the SMPP session's lease
    restarted_at: float = 0.0
    recovery: float | None = None  # restart -> first success answer (server kills)
    smsc_resume: float | None = None  # kill -> first submit_sm after the restart
    resent: int = 0  # submit_sm of texts the SMSC had before, from this kill to the next


def _targets(rng: random.Random, kills: int, workers: int) -> list[list[str]]:
    if workers == 0:
        return [["serve"] for _ in range(kills)]
    worker_roles = [f"worker{i}" for i in range(1, workers + 1)]
    # Each kind at least once, then at random; "both" kills the server and a worker.
    kinds = ["serve", "worker"][:kills]
    kinds += [rng.choice(["serve", "worker", "both"]) for _ in range(kills - len(kinds))]
    rng.shuffle(kinds)
    out = []
    for kind in kinds:
        roles = [] if kind == "worker" else ["serve"]
        if kind != "serve":
            roles.append(rng.choice(worker_roles))
        out.append(roles)
    return out


def _lease_owner(reader: Engine) -> str:
    with reader.connect() as conn:
        return str(conn.scalar(select(ConnectionLease.owner)) or "")


async def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _chaos(
    cluster: Cluster,
    reader: Engine,
    load: Load,
    submits: list[tuple[float, bytes]],
    rng: random.Random,
    kills: int,
    gap: float,
    wait_smsc: bool,
    start: float,
) -> list[Kill]:
    """Kill ``kills`` times, each at a random moment 0.5..``gap`` s after the previous
    restart recovered: answers again (a server kill) and, with ``wait_smsc``, submit_sm
    reaches the SMSC again (the killed process may have held the SMPP session)."""
    targets = _targets(rng, kills, len(cluster.roles) - 1)
    done: list[Kill] = []
    await asyncio.sleep(2.0)  # the first SMPP bind and the first accepts
    for roles in targets:
        await asyncio.sleep(rng.uniform(0.5, gap))
        pause = round(rng.uniform(0.5, 2.0), 2)
        owner = await asyncio.to_thread(_lease_owner, reader)
        kill_at = time.monotonic()
        pids = [cluster.kill(role) for role in roles]
        held = any(f":{pid}:" in owner for pid in pids)
        kill = Kill(round(kill_at - start, 1), roles, pids, pause, kill_at, held)
        done.append(kill)
        await asyncio.sleep(pause)
        kill.restarted_at = restarted = time.monotonic()
        for role in roles:
            cluster.start(role)

        def answered(t: float = restarted) -> bool:
            return load.last_success >= t

        def submitted(t: float = restarted) -> bool:
            return bool(submits) and submits[-1][0] >= t

        # Each recovery is measured on its own: the next kill waits for it.
        if "serve" in roles and await _until(answered, 120):
            kill.recovery = load.last_success - restarted
        if wait_smsc:
            await _until(submitted, 120)
    return done


# --- checks -----------------------------------------------------------------------------


def _final_ids(reader: Engine) -> set[str]:
    with reader.connect() as conn:
        return set(conn.scalars(select(Message.id).where(Message.final_at.is_not(None))))


def _pending_events(reader: Engine) -> int:
    with reader.connect() as conn:
        query = select(func.count()).where(WebhookEvent.status == "pending")
        return int(conn.scalar(query.select_from(WebhookEvent)) or 0)


@dataclass
class Stored:
    statuses: dict[str, str]  # message id -> status
    final: set[str]
    texts: dict[str, str]  # message id -> text
    failures: Counter[str]  # "status code error" of messages that did not get delivered
    dead_jobs: Counter[str]
    pending_events: int


def _stored(reader: Engine) -> Stored:
    with reader.connect() as conn:
        rows = conn.execute(
            select(
                Message.id,
                Message.status,
                Message.final_at,
                Message.route,
                Message.code,
                Message.error,
            )
        )
        statuses: dict[str, str] = {}
        final: set[str] = set()
        texts: dict[str, str] = {}
        failures: Counter[str] = Counter()
        for message_id, status, final_at, route, code, error in rows:
            statuses[message_id] = status
            texts[message_id] = str(route[0].get("text") or "")
            if final_at is not None:
                final.add(message_id)
                if status != "delivered":
                    failures[f"{status} {code} {error}"] += 1
        dead = Counter(
            f"{kind} ({(error or '').splitlines()[-1][:60] if error else 'no error'})"
            for kind, error in conn.execute(
                select(Job.kind, Job.last_error).where(Job.status == "dead")
            )
        )
    return Stored(statuses, final, texts, failures, dead, _pending_events(reader))


async def _settle(
    reader: Engine, load: Load, receiver: Receiver, wait: float
) -> tuple[float, bool]:
    """Wait until every accepted id is final, reported, and no event is pending."""
    t0 = time.monotonic()
    next_note = t0 + 15
    while True:
        final = await asyncio.to_thread(_final_ids, reader)
        pending = await asyncio.to_thread(_pending_events, reader)
        accepted = set(load.accepted)
        not_final = len(accepted - final)
        not_reported = len(accepted - receiver.final)
        if not_final == 0 and not_reported == 0 and pending == 0:
            return time.monotonic() - t0, True
        now = time.monotonic()
        if now - t0 > wait:
            return now - t0, False
        if now > next_note:
            print(
                f"   waiting {now - t0:4.0f} s: {not_final} not final, "
                f"{not_reported} without a final report, {pending} webhook events pending",
                flush=True,
            )
            next_note = now + 15
        await asyncio.sleep(1.0)


# --- the run ----------------------------------------------------------------------------


def _line(name: str, value: str) -> None:
    print(f"{name:<44} {value}")


def _dist(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {percentile(values, 50):.1f} s   max {max(values):.1f} s   (n={len(values)})"


async def _run(args: argparse.Namespace, db: Database, logdir: Path) -> bool:
    rng = random.Random(args.seed)
    submits: list[tuple[float, bytes]] = []

    def on_submit(rec: Received) -> None:
        submits.append((time.monotonic(), rec.short_message))

    smsc = Smsc(receipt_delay=args.receipt_delay)
    smsc.on_submit = on_submit  # None: accept every submit_sm
    receiver = Receiver()
    await receiver.start()
    reader = _reader(db)
    port = free_port()
    env = {
        **os.environ,
        "OMNIRELAY_DATABASE_URL": db.url,
        "OMNIRELAY_LOG_LEVEL": "WARNING",
        "OMNIRELAY_RATE_LIMIT_REQUESTS": "1000000000",  # load, not the per-org limit
        "OMNIRELAY_WORKER_POLL_INTERVAL": "0.5",
        "OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        # The default lease (300 s) is how long a killed worker's jobs wait before another
        # worker takes them; a shorter one keeps the test short (heartbeats renew it).
        "OMNIRELAY_JOB_LEASE_SECONDS": str(args.job_lease),
    }
    cluster = Cluster(
        env, port, args.workers, logdir, http_only=args.db == "sqlite" and args.workers > 0
    )
    smsc.start()
    try:
        token = await asyncio.to_thread(_org, db, smsc.port)
        for role in cluster.roles:
            cluster.start(role)
        await asyncio.to_thread(_wait_port, port, cluster, 60)
        print(
            f"== bench/chaos.py  db={args.db}  seed={args.seed}  rate={args.rate:g}/s  "
            f"kills={args.kills}  workers={args.workers}  idempotent={args.idempotent:g}",
            flush=True,
        )
        load = Load()
        stop = asyncio.Event()
        start = time.monotonic()
        driver = asyncio.create_task(
            _drive(
                f"http://127.0.0.1:{port}",
                token,
                receiver.url,
                load,
                args.rate,
                stop,
                args.idempotent,
                random.Random(rng.random()),
                str(args.seed),
            )
        )
        kills = await _chaos(
            cluster, reader, load, submits, rng, args.kills, args.gap, not args.quick, start
        )
        # The load goes on for --tail s after the last recovery (and --seconds at least).
        await asyncio.sleep(max(args.tail, start + args.seconds - time.monotonic()))
        stop.set()
        await driver
        load_end = time.monotonic()
        print(f"   load over after {load_end - start:.0f} s; waiting for the pipeline", flush=True)
        drained, complete = await _settle(reader, load, receiver, args.wait)
        crashed = cluster.dead()
        cluster.sample_rss()
    finally:
        cluster.stop()
        await receiver.stop()
        smsc.stop()

    with open(logdir / "submits.tsv", "w") as f:  # for a post-mortem (--keep-logs)
        for at, text in submits:
            f.write(f"{at - start:.3f}\t{text.decode()}\n")
        for kill in kills:
            f.write(f"{kill.killed_at - start:.3f}\tKILL {'+'.join(kill.roles)}\n")
            f.write(f"{kill.restarted_at - start:.3f}\tRESTART\n")
    # When did the SMSC get submit_sm again after each kill, and how many were resent?
    first: dict[bytes, float] = {}
    for at, text in submits:
        if text in first:
            # Blame the first kill after the first submit_sm: it lost the answer.
            cause = next((k for k in kills if first[text] < k.killed_at <= at), None)
            if cause is not None:
                cause.resent += 1
        first.setdefault(text, at)
    for n, kill in enumerate(kills, start=1):
        after = next((t for t, _ in submits if t >= kill.restarted_at), None)
        if after is not None:
            kill.smsc_resume = after - kill.killed_at
        kill_line = (
            f"kill {n} at {kill.at:5.1f} s: {'+'.join(kill.roles)} "
            f"(pid {','.join(map(str, kill.pids))}"
            f"{', SMPP owner' if kill.smpp_owner else ''}), restarted after {kill.pause:.2f} s"
        )
        if kill.recovery is not None:
            kill_line += f"; answers again {kill.recovery:.1f} s after the restart"
        elif "serve" in kill.roles:
            kill_line += "; never answered again"
        if kill.smsc_resume is not None:
            kill_line += f"; submit_sm again {kill.smsc_resume:.1f} s after the kill"
        kill_line += f"; {kill.resent} submit_sm resent"
        print(kill_line)

    stored = _stored(reader)
    reader.dispose()
    accepted = set(load.accepted)
    lost = sorted(accepted - stored.final)
    reports_lost = sorted(accepted - receiver.final)
    unanswered = [m for m, t in stored.texts.items() if m not in accepted]
    unanswered_final = sum(1 for m in unanswered if m in stored.final)
    finals = Counter(stored.statuses[m] for m in accepted if m in stored.final)
    # The SMSC delivers every message: one that ended otherwise was given up by omnirelay,
    # and never reached the phone although it was accepted.
    undelivered = sum(n for status, n in finals.items() if status != "delivered")
    reported: defaultdict[str, set[str]] = defaultdict(set)
    for r in receiver.reports:
        if r.status in FINAL:
            reported[r.message_id].add(r.status)
    # A final report must say what the database says, and only that.
    mismatched = sum(
        1 for m in accepted if m in reported and reported[m] != {stored.statuses.get(m)}
    )
    # One request stored as two messages (an Idempotency-Key that did not hold).
    per_text = Counter(stored.texts.values())
    stored_twice = sum(n - 1 for n in per_text.values() if n > 1)
    smsc_texts = Counter(text for _, text in submits)
    smsc_dups = sum(n - 1 for n in smsc_texts.values() if n > 1)
    smsc_dup_texts = sum(1 for n in smsc_texts.values() if n > 1)
    by_hook = Counter(r.webhook_id for r in receiver.reports)
    hook_dups = sum(n - 1 for n in by_hook.values() if n > 1)
    hooks_per_status: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for r in receiver.reports:
        hooks_per_status[(r.message_id, r.status)].add(r.webhook_id)
    emitted_twice = sum(len(ids) - 1 for ids in hooks_per_status.values() if len(ids) > 1)
    # Reports of one message arrive in order: no 'sent' first received after a final one.
    first_at: dict[tuple[str, str], float] = {}
    for r in receiver.reports:
        first_at.setdefault((r.message_id, r.status), r.at)
    out_of_order = 0
    for (message_id, status), at in first_at.items():
        if status == "sent":
            finals_at = [first_at[(message_id, s)] for s in FINAL if (message_id, s) in first_at]
            if any(f < at for f in finals_at):
                out_of_order += 1

    print()
    _line("requests offered", f"{load.offered:,}")
    _line("accepted (success answer)", f"{len(accepted):,}")
    _line("  answered by a replay (Idempotency-Key)", f"{load.replayed:,}")
    _line("  tries sent again with the same key", f"{load.retries:,}")
    _line("not accepted (no success answer)", f"{load.not_accepted:,}")
    failed_tries = ", ".join(f"{k} {n}" for k, n in load.errors.most_common()) or "none"
    _line("  failed tries", failed_tries)
    for body, n in load.server_errors.most_common(3):
        _line("  5xx answers", f"{n} x {body}")
    for body, n in load.refused.most_common(3):
        _line("  !! refused", f"{n} x {body}")
    _line(
        "stored but unanswered (answer lost)",
        f"{len(unanswered):,}  ({unanswered_final:,} of them final)",
    )
    _line("LOST (accepted, no final status)", f"{len(lost):,}")
    _line("REPORTS LOST (accepted, no final report)", f"{len(reports_lost):,}")
    _line("NOT DELIVERED (final, but not delivered)", f"{undelivered:,}")
    _line("final statuses", ", ".join(f"{s} {n:,}" for s, n in finals.most_common()) or "-")
    for failure, n in stored.failures.most_common(3):
        _line("  not delivered", f"{n} x {failure[:100]}")
    _line("final report != status in the database", f"{mismatched:,}")
    _line("messages stored twice for one request", f"{stored_twice:,}")
    _line("duplicates at the SMSC (submit_sm)", f"{smsc_dups:,}  ({smsc_dup_texts:,} texts)")
    _line("duplicate webhook deliveries (webhook-id)", f"{hook_dups:,}")
    _line("status reported twice (distinct webhook-id)", f"{emitted_twice:,}")
    _line("reports out of order (sent after final)", f"{out_of_order:,}")
    recoveries = [k.recovery for k in kills if k.recovery is not None]
    resumes = [k.smsc_resume for k in kills if k.smsc_resume is not None]
    _line("recovery: restart -> first success answer", _dist(recoveries))
    _line("recovery: kill -> submit_sm at the SMSC again", _dist(resumes))
    _line("drained: load over -> all final and reported", f"{drained:.1f} s")
    _line("dead jobs", "; ".join(f"{n} {k}" for k, n in stored.dead_jobs.items()) or "0")
    _line("webhook events still pending", f"{stored.pending_events:,}")
    _line("peak RSS of an omnirelay process", f"{cluster.peak_rss:,.1f} MB")

    ok = not lost and not reports_lost and not undelivered
    if not complete:
        print(f"!! not settled within --wait {args.wait:g} s")
    if crashed:
        print(f"!! exited by themselves: {', '.join(crashed)}")
    if lost:
        by_status = Counter(stored.statuses.get(m, "missing from the database") for m in lost)
        print(f"!! lost by status: {dict(by_status)}; e.g. {lost[:5]}")
    if reports_lost:
        print(f"!! without a final report: e.g. {reports_lost[:5]}")
    if mismatched:
        print(f"!! {mismatched} final reports disagree with the database")
    if stored_twice:
        print(f"!! texts stored twice: {[t for t, n in per_text.items() if n > 1][:5]}")
    print("RESULT:", "PASS, nothing lost" if ok else "FAIL, lost, unreported or not delivered")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs during the load")
    parser.add_argument("--rate", type=float, default=50.0, help="sendSMS requests per second")
    parser.add_argument(
        "--gap", type=float, default=10.0, help="a kill comes 0.5..GAP s after the last recovery"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="shortest load")
    parser.add_argument("--tail", type=float, default=10.0, help="load after the last recovery")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed)")
    parser.add_argument(
        "--workers", type=int, default=None, help="omnirelay worker processes (PostgreSQL: 1)"
    )
    parser.add_argument(
        "--idempotent", type=float, default=0.5, help="share of requests with Idempotency-Key"
    )
    parser.add_argument("--receipt-delay", type=float, default=0.5, help="SMSC receipt delay")
    parser.add_argument(
        "--job-lease", type=float, default=30.0, help="OMNIRELAY_JOB_LEASE_SECONDS of the run"
    )
    parser.add_argument("--wait", type=float, default=240.0, help="longest wait after the load")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="do not wait for submit_sm to flow again before the next kill",
    )
    parser.add_argument(
        "--adapter-messages", type=int, default=200, help="messages per adapter, faulted peers"
    )
    parser.add_argument(
        "--faults", type=float, default=0.2, help="share of an adapter's sends faulted"
    )
    parser.add_argument(
        "--adapters-only", action="store_true", help="only the faults per adapter, no kills"
    )
    parser.add_argument("--smoke", action="store_true", help="a small run for CI (2 kills)")
    args = parser.parse_args()
    if args.smoke:
        args.kills, args.rate, args.gap, args.seconds, args.tail = 2, 20.0, 5.0, 15.0, 3.0
        args.quick = True
        args.wait = min(args.wait, 100.0)
        args.adapter_messages = 20
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    if args.workers is None:
        args.workers = 1 if args.db == "postgresql" else 0
    if args.kills < 1:
        parser.error("--kills must be at least 1")

    logdir = Path(tempfile.mkdtemp(prefix="omnirelay-chaos-"))
    ok = args.adapters_only
    try:
        if not args.adapters_only:
            with database(args.db) as db:
                ok = asyncio.run(_run(args, db, logdir))
    finally:
        if ok and not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"server logs: {logdir}")
    print()
    os.environ.setdefault("OMNIRELAY_LOG_LEVEL", "WARNING")
    with database(args.db) as db:
        adapters_ok = adapterchaos.run(
            db, args.adapter_messages, seed=args.seed, share=args.faults, wait=args.wait
        )
    sys.exit(0 if ok and adapters_ok else 1)


if __name__ == "__main__":
    main()
