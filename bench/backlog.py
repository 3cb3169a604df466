"""Backlog drain: N due messages already accepted, then ``omnirelay worker`` is started and
drains them through the sandbox to a final status. Prints the drain rate and the worker's
RSS over time (flat memory is the point), and the job claim batch it ran with.

    python bench/backlog.py [--db sqlite|postgresql] [-n N] [--workers W] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from omnirelay.connections import service as connections
from omnirelay.db import Database, utcnow
from omnirelay.messaging import service as messaging
from omnirelay.messaging.models import Message
from omnirelay.messaging.validation import Rules, omnichannel
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import database, proc_stats

PHONE = "79161234567"


def _fill(db: Database, n: int) -> None:
    with db.transaction() as session:
        org = tenancy.create_organization(session, "Backlog", created_via="cli").organization.id
        from omnirelay.billing import service as billing

        billing.top_up(session, org, "100000000")
        for row in connections.list_connections(session, org):
            connections.update(
                session, org, row.id, {"settings": {"report_delay": 0, "read_delay": 0}}
            )
    rules = Rules("RU")
    body = {"route": [{"channel": "sms", "phone": PHONE, "sender": "SANDBOX", "text": "b"}]}
    draft_batch = [omnichannel(body, rules, utcnow()) for _ in range(1000)]
    done = 0
    while done < n:
        size = min(1000, n - done)
        with db.transaction() as session:
            messaging.accept_many(session, org, draft_batch[:size], utcnow())
        done += size


def _count_final(db: Database) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(Message).where(Message.final_at.is_not(None))
        return int(session.scalar(query) or 0)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("-n", "--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between lines")
    parser.add_argument(
        "--profile", help="py-spy the (first) worker into this file (raw collapsed stacks)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.messages = 1000
    if args.db == "sqlite" and args.workers != 1:
        raise SystemExit("SQLite runs one worker process")
    with database(args.db) as db:
        t0 = time.perf_counter()
        _fill(db, args.messages)
        print(f"== bench/backlog.py  db={args.db}  n={args.messages}  workers={args.workers}")
        print(f"{'backlog written':<40} {time.perf_counter() - t0:>12,.1f} s", flush=True)
        env = {**os.environ, "OMNIRELAY_DATABASE_URL": db.url, "OMNIRELAY_LOG_LEVEL": "WARNING"}
        procs = [
            subprocess.Popen([sys.executable, "-m", "omnirelay", "worker"], env=env)
            for _ in range(args.workers)
        ]
        spy = None
        if args.profile:
            spy = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--idle",
                 "--threads", "-r", "50", "-f", "raw", "-o", args.profile,
                 "--pid", str(procs[0].pid)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            t0 = time.perf_counter()
            samples: list[float] = []
            final = 0
            first: tuple[float, int, float] | None = None
            last_report = t0
            while final < args.messages:
                time.sleep(1.0)
                samples.append(sum(_rss_mb(p.pid) for p in procs))
                final = _count_final(db)
                now = time.perf_counter()
                if first is None and final > 0:
                    # The drain's own rate and CPU start here: the worker's start-up
                    # (imports, ~1-5 s on a loaded machine) is not the drain's.
                    first = (now, final, sum(proc_stats(p.pid)[1] for p in procs))
                if now - last_report >= args.progress:
                    # A long drain reports as it goes, so its rate and memory show a trend.
                    last_report = now
                    print(f"  {now - t0:>7,.0f} s  final {final:>9,}  "
                          f"{final / (now - t0):>8,.1f} msg/s  RSS {samples[-1]:,.0f} MB",
                          flush=True)  # fmt: skip
                if time.perf_counter() - t0 > 4 * 3600:
                    raise SystemExit("drain did not finish in 4 hours")
            took = time.perf_counter() - t0
            cpu = sum(proc_stats(p.pid)[1] for p in procs)
            print("rss samples", [round(s) for s in samples[:: max(1, len(samples) // 10)]])
            print(f"{'drained to final status':<40} {args.messages / took:>12,.1f} msg/s")
            print(f"{'worker RSS first / peak / last':<40} "
                  f"{samples[0]:,.0f} / {max(samples):,.0f} / {samples[-1]:,.0f} MB")  # fmt: skip
            print(f"{'worker CPU per 1,000 messages':<40} {cpu / args.messages * 1000:>12,.2f} s")
            if first is not None and args.messages > first[1]:
                at, done, cpu0 = first
                rest = args.messages - done
                print(f"{'drained, from the first final status':<40} "
                      f"{rest / (took - (at - t0)):>12,.1f} msg/s")  # fmt: skip
                print(f"{'  its worker CPU per 1,000 messages':<40} "
                      f"{(cpu - cpu0) / rest * 1000:>12,.2f} s")  # fmt: skip
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait(timeout=60)
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)


if __name__ == "__main__":
    main()
