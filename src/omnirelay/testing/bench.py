"""Shared set-up for benchmarks (bench/): a database on either engine, percentiles, peak RSS."""

from __future__ import annotations

import contextlib
import resource
import tempfile
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
