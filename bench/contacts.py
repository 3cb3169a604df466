"""Contacts benchmark: bulk import, the filter language over the imported contacts, and
merges under concurrent creates.

Phases: (1) import N contacts with 3 variables each (a STRING, a NUMBER and a DATE) in
batches of 5,000 through ``contacts.importer`` (phones normalised with phonenumbers):
contacts/s and peak RSS; (2) a nested and/or filter with ``total`` that matches 1 % and
one that matches 50 % of them, each run R times: p50/p99 of the whole list call (limit
10, order createdAt DESC, total); (3) T threads creating overlapping phones while
another merges contacts through vkId updates: duplicates of a channel id (must be 0).

    python bench/contacts.py [--db sqlite|postgresql] [--contacts N] [--runs R] [--smoke]
                             [--explain] [--keep DIR]

``--keep DIR`` keeps the built database under DIR (a SQLite file, a PostgreSQL data
directory) and reuses it on the next run with the same N: building a million contacts
takes minutes; the import phase is then skipped (and the merges, which would change it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from omnirelay.contacts import importer, repository, unit
from omnirelay.contacts import service as contacts
from omnirelay.contacts.filter_plans import compile_ids, count_statements
from omnirelay.contacts.models import Contact
from omnirelay.contacts.schemas import NewContact, Query
from omnirelay.db import Database
from omnirelay.migrate import upgrade
from omnirelay.tenancy import service as tenancy
from omnirelay.testing.bench import database, peak_rss_mb, percentile
from omnirelay.testing.postgres import PostgresServer

CITIES = ["Moscow", "Kazan", "Omsk", "Ufa", "Perm", "Tver", "Sochi", "Tula"]


def _org(db: Database) -> tuple[str, str]:
    with db.transaction() as session:
        org_id = tenancy.create_organization(session, "Bench", created_via="cli").organization.id
        orders = contacts.create_variable(session, org_id, "Orders", "NUMBER").id
    return org_id, orders


def _rows(n: int, seed: int = 7) -> Iterator[tuple[int, dict[str, Any]]]:
    """Made as they are read, as from a file: the peak RSS is the importer's."""
    rnd = random.Random(seed)
    base = date(1960, 1, 1)
    for i in range(n):
        yield (
            i + 2,
            {
                "phone": f"7916{i:07d}",
                "City": CITIES[i % len(CITIES)],
                "Orders": rnd.randrange(100),  # uniform: a range of k values matches k %
                "Birthday": (base + timedelta(days=rnd.randrange(18000))).isoformat(),
            },
        )


def import_phase(db: Database, org_id: str, n: int, parsers: int) -> None:
    with db.read() as session:
        variables = importer.variable_keys(session, org_id)
    t0, c0 = time.perf_counter(), time.process_time()
    total = importer.Summary()
    for parsed in importer.parse_in_processes(importer.batches(_rows(n)), variables, parsers):
        with db.transaction() as session:
            total.add(importer.import_parsed(session, org_id, parsed, variables))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert total.created == n, total.as_dict()
    print(
        f"import: {n:,} contacts x 3 variables in {elapsed:.1f} s = {n / elapsed:,.0f} contacts/s"
        f" with {parsers} parser processes  (peak RSS {peak_rss_mb():.0f} MB, this process);"
        f" this process's CPU {cpu / n * 1e6:.0f} us a contact = {n / cpu:,.0f} contacts/s"
        " of CPU (on SQLite the database's work is in it; a figure the machine's load"
        " does not inflate as much)"
    )


def _filters(orders: str) -> dict[str, Any]:
    one = {  # Orders == 42 (1 %), or a city no contact has
        "union": "or",
        "conditions": [
            {
                "union": "and",
                "conditions": [
                    {"field": orders, "op": "gte", "value": 42},
                    {"field": orders, "op": "lt", "value": 43},
                ],
            },
            {"union": None, "conditions": [{"field": "City", "op": "eq", "value": "Atlantis"}]},
        ],
    }
    half = {  # Orders < 25 or Orders >= 75 (50 %), and the contact has a phone
        "union": "and",
        "conditions": [
            {
                "union": "or",
                "conditions": [
                    {"field": orders, "op": "lt", "value": 25},
                    {"field": orders, "op": "gte", "value": 75},
                ],
            },
            {"field": "channels", "op": "has", "value": "sms"},
        ],
    }
    return {"1%": one, "50%": half}


def explain(db: Database, org_id: str, orders: str) -> None:
    """The plans of each filter's count and page (as ``list_contacts`` runs them):
    EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite."""
    for name, flt in _filters(orders).items():
        with db.read() as session:
            pg = session.get_bind().dialect.name == "postgresql"
            if pg:
                session.execute(text("SET LOCAL jit = off"))  # as repository.count_ids
            ids = compile_ids(
                flt, lambda k: repository.variable(session, org_id, k), org_id, join=pg
            )
            assert ids is not None
            page, _ = contacts.plan_page(session, org_id, _query(flt))
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
            counts = [("count", c) for c in count_statements(ids, split=not pg)]
            for what, stmt in (*counts, ("page", page)):
                print(f"plan of the {name} {what}:")
                for row in _explain(session, prefix, stmt, pg):
                    print("   ", " ".join(str(c) for c in row))


def _explain(session: Any, prefix: str, stmt: Any, pg: bool) -> Any:
    bind = session.get_bind()
    if pg:  # psycopg's server-side binding: the literals make the plan the real one
        compiled = stmt.compile(bind, compile_kwargs={"literal_binds": True})
        return session.execute(text(prefix + str(compiled)))
    compiled = stmt.compile(bind)  # SQLite's LIMIT -1 of an OFFSET stays a parameter
    values = tuple(compiled.params[k] for k in compiled.positiontup or ())
    return session.connection().exec_driver_sql(prefix + str(compiled), values)


def _query(flt: Any) -> Query:
    return Query(filter=flt, limit=10, order=[["createdAt", "DESC"]])


def _proc_ticks(pid: int | str) -> tuple[int, list[int]]:
    """(parent pid, [utime, stime, cutime, cstime]) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), [int(x) for x in fields[11:15]]


def _server_cpu(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster (with the children it
    reaped: parallel workers end after their query) and its live children."""
    total = sum(_proc_ticks(postmaster)[1])
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent, ticks = _proc_ticks(entry)
            except (OSError, IndexError, ValueError):
                continue
            if parent == postmaster:
                total += ticks[0] + ticks[1]
    return total / os.sysconf("SC_CLK_TCK")


def filter_phase(db: Database, org_id: str, orders: str, n: int, runs: int) -> None:
    postmaster = None
    if db.is_postgresql:
        with db.read() as session:
            postmaster = _proc_ticks(session.scalar(text("SELECT pg_backend_pid()")))[0]
    for name, flt in _filters(orders).items():
        times, cpus, server = [], [], []
        total = 0
        for _ in range(runs):
            s0 = _server_cpu(postmaster) if postmaster else 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            with db.read() as session:
                _, total = contacts.list_contacts(session, org_id, _query(flt))
            times.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
            if postmaster:
                server.append((_server_cpu(postmaster) - s0) * 1000)
        print(
            f"filter {name}: total {total:,} of {n:,}  p50 {percentile(times, 50):.1f} ms"
            f"  p99 {percentile(times, 99):.1f} ms  ({runs} runs); this process's CPU p50"
            f" {percentile(cpus, 50):.1f} ms"
            + (f"; the server's CPU p50 {percentile(server, 50):.1f} ms" if server else "")
        )


def merge_phase(db: Database, org_id: str, threads: int, phones: int) -> None:
    numbers = [f"7925{i:07d}" for i in range(phones)]
    errors: list[BaseException] = []

    def creator(k: int) -> None:
        rnd = random.Random(k)
        for start in range(0, phones, 20):
            chunk = numbers[start : start + 20]
            rnd.shuffle(chunk)
            items = [NewContact(ids={"phone": p}) for p in chunk]
            unit.run(db, lambda s, items=items: contacts.create(s, org_id, items))

    def merger() -> None:
        for i in range(phones):

            def work(s: Any, i: int = i) -> None:
                found = contacts.find_by_channel_id(s, org_id, "phone", numbers[i])
                if found is not None:
                    contacts.update_channel_id(s, org_id, found.id, "vkId", str(i % 50))

            unit.run(db, work)

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=guarded, args=(creator, k)) for k in range(threads)]
    workers.append(threading.Thread(target=guarded, args=(merger,)))
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    with db.read() as session:
        dup_phone = session.scalar(
            select(func.count() - func.count(func.distinct(Contact.phone))).where(
                Contact.organization_id == org_id, Contact.phone.is_not(None)
            )
        )
        dup_vk = session.scalar(
            select(func.count() - func.count(func.distinct(Contact.vk_id))).where(
                Contact.organization_id == org_id, Contact.vk_id.is_not(None)
            )
        )
    print(
        f"merge: {threads} creating threads x {phones} phones + 1 merging thread in "
        f"{elapsed:.1f} s; errors {len(errors)}; duplicate phones {dup_phone}, "
        f"duplicate vkIds {dup_vk}"
    )
    assert not errors and dup_phone == 0 and dup_vk == 0, errors[:1]


class _KeptPostgres(PostgresServer):
    """A PostgreSQL server whose data directory outlives the run (``--keep``)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = root
        self.data = root / "data"

    def start(self) -> PostgresServer:
        if (self.data / "PG_VERSION").exists():
            if self._as_root:
                shutil.chown(self.root, "postgres", "postgres")
            opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-o",
                opts,
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            )
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        return super().start()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def kept_database(engine: str, where: Path) -> Any:
    """(database, whether it was built before) under ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    if engine == "sqlite":
        path = where / "bench.db"
        built = path.exists()
        url = f"sqlite:///{path}"
        upgrade(url)  # a kept database follows the migrations
        db = Database(url)
        try:
            yield db, built
        finally:
            db.dispose()
        return
    server = _KeptPostgres(where / "pg")
    built = (server.data / "PG_VERSION").exists()
    server.start()
    try:
        if not built:
            admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text("CREATE DATABASE bench"))
            admin.dispose()
        upgrade(server.url("bench"))
        db = Database(server.url("bench"), pool_size=20)
        try:
            yield db, built
        finally:
            db.dispose()
    finally:
        server.stop()


def settle(db: Database) -> None:
    """What PostgreSQL's autovacuum does on its own after a bulk load (it vacuums a table
    after inserts of 20 % of it), done now so every run sees it: the visibility map (for
    index-only scans) and the statistics. SQLite gets nothing: omnirelay never runs
    ANALYZE there, so its plans must not need statistics."""
    if db.is_postgresql:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE contacts"))
            conn.execute(text("VACUUM ANALYZE contact_values"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--parsers", type=int, default=importer.DEFAULT_PARSERS)
    parser.add_argument("--smoke", action="store_true", help="small and fast (CI)")
    parser.add_argument("--explain", action="store_true", help="print the filters' plans")
    parser.add_argument("--keep", type=Path, help="keep and reuse the built database here")
    args = parser.parse_args()
    n, runs, phones = (2_000, 3, 40) if args.smoke else (args.contacts, args.runs, 400)
    if args.keep is None:
        with database(args.db) as db:
            org_id, orders = _org(db)
            print(f"contacts bench on {args.db}")
            import_phase(db, org_id, n, args.parsers)
            settle(db)
            if args.explain:
                explain(db, org_id, orders)
            filter_phase(db, org_id, orders, n, runs)
            merge_phase(db, org_id, args.threads, phones)
        return
    where = args.keep / f"{args.db}-{n}"
    with kept_database(args.db, where) as (db, built):
        print(f"contacts bench on {args.db} ({'kept' if built else 'new'} database {where})")
        ids = where / "ids.json"
        if built and not ids.exists():
            raise SystemExit(f"{where} holds an unfinished build: remove it")
        if built:
            org_id, orders = json.loads(ids.read_text())
            settle(db)  # after a migration that rewrote rows, as autovacuum would
        else:
            org_id, orders = _org(db)
            import_phase(db, org_id, n, args.parsers)
            settle(db)
            ids.write_text(json.dumps([org_id, orders]))
        if args.explain:
            explain(db, org_id, orders)
        filter_phase(db, org_id, orders, n, runs)


if __name__ == "__main__":
    main()
