"""Kannel side by side: HTTP "send one SMS" -> SMPP -> one local SMSC, Kannel then omnirelay,
in one run, with the same load (docs/bench-kannel.md).

1. Installs Debian's ``kannel`` and ``wrk`` when missing (apt-get, as root).
2. Starts the fast SMSC (omnirelay/testing/fastsmsc.py) in its own process.
3. Kannel (bearerbox + smsbox, configured in a temporary directory): wrk on its HTTP
   sendsms, then an open loop at half the rate it reached; stopped.
4. omnirelay as a user runs it (``omnirelay migrate``, ``omnirelay admin create-org``,
   ``omnirelay serve`` [+ N ``omnirelay worker``], an ``smpp`` connection added through
   ``POST /api/connections``): the same on ``POST /v3/message/sendSMS``.
5. Prints, for each: accepted/s and p50/p99 (wrk), submit_sm/s at the SMSC (first to last,
   after every accepted message arrived or a bounded wait), p50/p99 at half rate, peak
   RSS and CPU of each process; and the ratios omnirelay/Kannel.

    python bench/kannel.py [--db sqlite|postgresql] [--workers N] [--seconds S]
                           [--connections C] [--window W] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnirelay.testing.bench import Omnirelay, database, percentile, proc_stats
from omnirelay.testing.fastsmsc import FastSmscProcess, Stats
from omnirelay.testing.kannel import Kannel, ensure_installed
from omnirelay.testing.loadgen import (
    OpenLoopResult,
    WrkResult,
    lua_get,
    lua_post_json,
    request_bytes,
    run_open_loop,
    wait_for,
    wrk,
)

PHONE = "79161234567"
LOOPBACK = "127.0.0.0/8,::1/128"


@dataclass
class Side:
    name: str
    closed: WrkResult | None = None
    stats: Stats | None = None
    drained: bool = False  # every accepted message reached the SMSC within the wait
    smsc_cpu: float = 0.0  # the SMSC's CPU share of one core over the closed loop
    smsc_cpu_per_submit: float = 0.0  # its CPU seconds per submit_sm, closed loop + drain
    cpu: float = 0.0  # CPU seconds of the system's processes over the closed loop + drain
    half: OpenLoopResult | None = None
    peaks: dict[str, float] = field(default_factory=dict)


def _wait_submits(smsc: FastSmscProcess, accepted: int, timeout: float, stall: float) -> Stats:
    """The SMSC's figures once ``accepted`` submit_sm arrived, or ``timeout`` passed, or
    none arrived for ``stall`` seconds (what is missing then is not coming)."""
    deadline = time.monotonic() + timeout
    stats = smsc.stats()
    moved = time.monotonic()
    while stats.submits < accepted:
        now = time.monotonic()
        if now > deadline or now - moved > stall:
            break
        time.sleep(0.2)
        newer = smsc.stats()
        if newer.submits != stats.submits:
            moved = time.monotonic()
        stats = newer
    return stats


def _measure(
    side: Side,
    args: argparse.Namespace,
    smsc: FastSmscProcess,
    *,
    port: int,
    path: str,
    script: str,
    make: Callable[[int], bytes],
    cpu: Callable[[], float],
) -> None:
    """The closed loop (wrk), the wait for the SMSC, then the open loop at half rate."""
    smsc.reset()
    smsc_cpu0, cpu0, t0 = proc_stats(smsc.pid)[1], cpu(), time.monotonic()
    side.closed = wrk(
        f"http://127.0.0.1:{port}{path}",
        script,
        threads=args.threads,
        connections=args.connections,
        seconds=args.seconds,
        timeout=args.request_timeout,
    )
    side.smsc_cpu = (proc_stats(smsc.pid)[1] - smsc_cpu0) / (time.monotonic() - t0)
    accepted = side.closed.accepted
    side.stats = _wait_submits(smsc, accepted, args.drain_timeout, args.stall)
    side.drained = side.stats.submits >= accepted
    side.smsc_cpu_per_submit = (proc_stats(smsc.pid)[1] - smsc_cpu0) / max(side.stats.submits, 1)
    side.cpu = cpu() - cpu0
    rate = max(1.0, side.closed.accepted_rate / 2)
    side.half = run_open_loop(
        "127.0.0.1",
        port,
        make,
        rate=rate,
        seconds=args.open_seconds,
        connections=args.connections,
        grace=args.request_timeout,
    )


def run_kannel(
    args: argparse.Namespace, smsc: FastSmscProcess, tmp: Path, *, receipts: bool
) -> Side:
    side = Side("Kannel" if receipts else "Kannel, no receipts asked")
    home = tmp / ("kannel" if receipts else "kannel-no-receipts")
    home.mkdir()
    with Kannel(home, smsc_port=smsc.port, window=args.window, receipts=receipts) as kannel:
        path = kannel.sendsms

        def make(i: int) -> bytes:
            return request_bytes("GET", f"{path}&text=half-{i}", {})

        _measure(
            side,
            args,
            smsc,
            port=kannel.http_port,
            path=path,
            script=lua_get(path, "text", "bench-"),
            make=make,
            cpu=kannel.cpu,
        )
        side.peaks = kannel.peaks()
    return side


def _cli(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "omnirelay", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"omnirelay {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


class Admin:
    """The admin API (/api) with the organization's credentials."""

    def __init__(self, base: str, creds: dict[str, Any]) -> None:
        self.base = base
        self.headers = {
            "Ocp-Apim-Subscription-Key": creds["subscription_keys"]["primary"],
            "Authorization": creds["access_token"],
            "Content-Type": "application/json",
        }

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers=self.headers
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return json.loads(raw) if raw else None


def _smpp_connection(admin: Admin, smsc_port: int, window: int) -> int:
    """The organization's SMS goes out over SMPP: sandbox SMS off, an smpp connection on."""
    admin("POST", "/api/billing/top-up", {"amount": "10000000"})
    for row in admin("GET", "/api/connections?channel=sms")["items"]:
        admin("PATCH", f"/api/connections/{row['id']}", {"active": False})
    created = admin(
        "POST",
        "/api/connections",
        {
            "channel": "sms",
            "provider": "smpp",
            "name": "fast SMSC",
            "senders": ["BENCH"],
            "settings": {
                "host": "127.0.0.1",
                "port": smsc_port,
                "system_id": "bench",
                "password": "bench",
                "window": window,
            },
        },
    )
    connection_id: int = created["id"]

    def bound() -> bool:
        session = admin("GET", f"/api/connections/{connection_id}").get("session") or {}
        return bool(session.get("state") == "bound")

    if not wait_for(bound, 60, interval=0.3):
        raise SystemExit("omnirelay's SMPP session did not bind within 60 s")
    return connection_id


def run_omnirelay(args: argparse.Namespace, smsc: FastSmscProcess) -> Side:
    side = Side("omnirelay")
    with database(args.db) as db:
        env = {
            **os.environ,
            "OMNIRELAY_DATABASE_URL": db.url,
            "OMNIRELAY_LOG_LEVEL": "WARNING",
            "OMNIRELAY_ALLOWED_NETWORKS": LOOPBACK,
            "OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS": LOOPBACK,
        }
        _cli(env, "migrate")
        creds = json.loads(_cli(env, "admin", "create-org", "--name", "Bench", "--json"))
        token = creds["api_token"]
        with Omnirelay(
            db.url,
            workers=args.workers,
            OMNIRELAY_ALLOWED_NETWORKS=LOOPBACK,
            OMNIRELAY_WEBHOOK_ALLOWED_NETWORKS=LOOPBACK,
        ) as server:
            _smpp_connection(Admin(server.base, creds), smsc.port, args.window)
            path = "/v3/message/sendSMS"
            headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
            before = f'{{"sender": "BENCH", "phone": "{PHONE}", "text": "bench-'
            after = '"}'

            def make(i: int) -> bytes:
                return request_bytes("POST", path, headers, f"{before}half-{i}{after}".encode())

            _measure(
                side,
                args,
                smsc,
                port=server.port,
                path=path,
                script=lua_post_json(path, headers, before, after),
                make=make,
                cpu=server.cpu,
            )
            side.peaks = server.peaks()
    return side


def _line(name: str, value: float, unit: str) -> None:
    print(f"{name:<44} {value:>12,.1f} {unit}")


def report(sides: list[Side], smsc_peak: float) -> None:
    for side in sides:
        assert side.closed is not None and side.stats is not None and side.half is not None
        c, s, h = side.closed, side.stats, side.half
        print(f"-- {side.name}")
        _line("sendSMS accepted (wrk)", c.accepted_rate, "msg/s")
        _line("sendSMS latency p50 (wrk)", c.p50_ms, "ms")
        _line("sendSMS latency p99 (wrk)", c.p99_ms, "ms")
        if c.failed:
            print(f"!! {c.failed} requests failed (status >= 400, socket errors, timeouts)")
        _line("submit_sm at the SMSC", s.rate(), "msg/s")
        print(
            f"{'  submitted / accepted':<44} {s.submits:>12,d} / {c.accepted:,d}"
            + ("" if side.drained else f"  (gave up waiting: {c.accepted - s.submits:,d} short)")
        )
        if s.submits != s.unique:
            print(f"!! {s.submits - s.unique} duplicate submit_sm at the SMSC")
        receipts = f"{s.receipts_sent:>12,d} / {s.receipts_acked:,d}"
        print(f"{'  receipts sent / acknowledged':<44} {receipts}")
        _line(
            f"open loop at {h.offered:,.0f}/s offered p50", percentile(h.latencies, 50) * 1000, "ms"
        )
        _line(
            f"open loop at {h.offered:,.0f}/s offered p99", percentile(h.latencies, 99) * 1000, "ms"
        )
        if h.failed:
            print(f"!! {h.failed} of {h.scheduled} open-loop requests failed or got no answer")
        _line("CPU per 1,000 accepted (its processes)", side.cpu / max(c.accepted, 1) * 1000, "s")
        _line("fast SMSC CPU during the closed loop", side.smsc_cpu * 100, "% of a core")
        # At a low rate each submit_sm has its own reads and writes: no ceiling to show.
        if side.smsc_cpu_per_submit and s.submits >= 1000 and s.rate() >= 1000:
            # What it could take on one free core at that cost (receipts included).
            _line("  its ceiling at that cost", 1 / side.smsc_cpu_per_submit, "msg/s per core")
        for name, peak in side.peaks.items():
            _line(f"peak RSS {name}", peak, "MB")
    _line("peak RSS fast SMSC", smsc_peak, "MB")
    omni = sides[-1]
    if omni.name != "omnirelay":
        return
    for kannel in sides[:-1]:
        assert kannel.closed and omni.closed and kannel.stats and omni.stats
        accepted = omni.closed.accepted_rate / max(kannel.closed.accepted_rate, 1e-9)
        submitted = omni.stats.rate() / max(kannel.stats.rate(), 1e-9)
        print(f"-- omnirelay / {kannel.name} (same run, same load)")
        print(f"{'accepted/s ratio':<44} {accepted:>12.3f}")
        print(f"{'submitted/s ratio':<44} {submitted:>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=0, help="omnirelay worker processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=500, help="SMPP window of both")
    parser.add_argument("--open-seconds", type=float, default=0.0, help="(0: --seconds)")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument(
        "--stall", type=float, default=30.0, help="give up after this long without a submit_sm"
    )
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument(
        "--kannel-receipts",
        choices=["yes", "no", "both"],
        default="both",
        help="Kannel asks for receipts (dlr-mask=3) as omnirelay does, or not, or a run of each",
    )
    parser.add_argument(
        "--only", choices=["kannel", "omnirelay"], help="run one side (no ratio printed)"
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds each, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.connections, args.drain_timeout, args.stall = 2.0, 8, 20.0, 10.0
        args.request_timeout, args.kannel_receipts = 5.0, "yes"
    args.open_seconds = args.open_seconds or args.seconds
    ensure_installed()
    processes = f"serve + {args.workers} worker(s)" if args.workers else "serve"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"== bench/kannel.py  db={args.db}  omnirelay {processes}  wrk -t{args.threads} "
        f"-c{args.connections} -d{args.seconds:.0f}s  window={args.window}  load {load}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-kannel-") as tmp, FastSmscProcess() as smsc:
        sides = []
        if args.only in (None, "kannel"):
            for receipts in {"yes": [True], "no": [False], "both": [True, False]}[
                args.kannel_receipts
            ]:
                sides.append(run_kannel(args, smsc, Path(tmp), receipts=receipts))
        if args.only in (None, "omnirelay"):
            sides.append(run_omnirelay(args, smsc))
        smsc_peak = proc_stats(smsc.pid)[0]
    report(sides, smsc_peak)


if __name__ == "__main__":
    main()
