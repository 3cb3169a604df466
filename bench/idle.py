"""Idle cost: omnirelay started as a user starts it, with nothing to do, for S seconds.

Prints the CPU seconds each process used while idle (pollers, keep-alives and the
scheduler's ticks are the whole of it) and their peak RSS. An idle server should cost
next to nothing: it is the figure a small self-hosted install pays all day.

    python bench/idle.py [--db sqlite|postgresql] [--workers W] [--seconds S] [--smoke]
"""

from __future__ import annotations

import argparse
import time

from omnirelay.testing.bench import Omnirelay, database, proc_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: in serve)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0, help="start-up excluded")
    parser.add_argument("--smoke", action="store_true", help="a small run for CI")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.settle = 5.0, 2.0

    with database(args.db) as db, Omnirelay(db.url, workers=args.workers) as server:
        time.sleep(args.settle)  # imports and migrations checks are not idle cost
        before = {name: proc_stats(p.pid)[1] for name, p in server.procs.items()}
        time.sleep(args.seconds)
        processes = f"serve + {args.workers} worker(s)" if args.workers else "serve"
        print(f"== bench/idle.py  db={args.db}  {processes}  {args.seconds:.0f} s idle")
        total = 0.0
        for name, p in server.procs.items():
            peak, cpu = proc_stats(p.pid)
            used = cpu - before[name]
            total += used
            print(f"{'idle CPU ' + name:<44} {used / args.seconds * 100:>12.2f} % of a core")
            print(f"{'peak RSS ' + name:<44} {peak:>12.1f} MB")
        print(f"{'idle CPU, all processes':<44} {total:>12.2f} s in {args.seconds:.0f} s")


if __name__ == "__main__":
    main()
