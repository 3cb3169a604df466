"""Shared set-up for benchmarks (bench/): a database on either engine, percentiles, peak RSS."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, text

from omnirelay.db import Database
from omnirelay.migrate import upgrade
from omnirelay.testing.postgres import PostgresServer


@contextlib.contextmanager
def database(engine: str) -> Iterator[Database]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            db = Database(url)
            try:
                yield db
            finally:
                db.dispose()
        return
    server = PostgresServer(durable=True).start()
    try:
        admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE bench"))
        admin.dispose()
        upgrade(server.url("bench"))
        db = Database(server.url("bench"), pool_size=20)
        try:
            yield db
        finally:
            db.dispose()
    finally:
        server.stop()


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MB, CPU seconds) of a live process, from /proc."""
    peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return peak, (int(fields[11]) + int(fields[12])) / ticks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Omnirelay:
    """omnirelay started as a user starts it: ``omnirelay serve`` alone (workers in the
    process), or with ``workers`` > 0, ``serve --no-workers`` plus that many
    ``omnirelay worker`` processes. Loopback only; stopped (SIGTERM, then SIGKILL) on exit.
    """

    def __init__(self, database_url: str, *, workers: int = 0, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "OMNIRELAY_DATABASE_URL": database_url,
            "OMNIRELAY_LOG_LEVEL": "WARNING",
            "OMNIRELAY_RATE_LIMIT_REQUESTS": "1000000000",  # load, not the per-org limit
            "OMNIRELAY_WORKER_POLL_INTERVAL": "0.5",
            **env,
        }
        self.workers = workers
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Omnirelay:
        serve = [sys.executable, "-m", "omnirelay", "serve", "--port", str(self.port)]
        if self.workers:
            serve.append("--no-workers")
        self.procs["serve"] = subprocess.Popen(serve, env=self.env, stdout=subprocess.DEVNULL)
        for i in range(self.workers):
            self.procs[f"worker{i + 1}"] = subprocess.Popen(
                [sys.executable, "-m", "omnirelay", "worker"],
                env=self.env,
                stdout=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.procs["serve"].poll() is not None:
                    self.__exit__()
                    raise SystemExit("omnirelay serve did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def cpu(self) -> float:
        """CPU seconds of every omnirelay process so far."""
        return sum(proc_stats(p.pid)[1] for p in self.procs.values())

    def cpus(self) -> dict[str, float]:
        """CPU seconds of each omnirelay process so far."""
        return {name: proc_stats(p.pid)[1] for name, p in self.procs.items()}

    def peaks(self) -> dict[str, float]:
        """Peak RSS in MB of each process."""
        return {name: proc_stats(p.pid)[0] for name, p in self.procs.items()}
