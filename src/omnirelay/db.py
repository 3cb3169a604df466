"""Database access: engine set-up for SQLite and PostgreSQL, the declarative base,
and the one way to open a transaction.

Services receive a ``Session`` and never commit; the edge (a request handler or a
job runner) opens exactly one transaction with :meth:`Database.transaction`.
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, echo=echo)
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def _sqlite_engine(
    url: str, database: str | None, *, echo: bool, read_only: bool = False
) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's implicit one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if read_only:
            cur.execute("PRAGMA query_only=ON")  # a write here is a bug: SQLite refuses it
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: no "database is locked" on a
        # read-to-write upgrade between threads, writers simply queue. A read-only
        # engine's plain BEGIN never waits for writers (WAL: readers see the last commit).
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class WriteTurns:
    """The order in which a process's threads take SQLite's one write lock: first come,
    first served, each woken the moment the one before commits.

    SQLite makes a writer that finds the lock taken sleep and poll (its busy handler backs
    off up to 100 ms a try), so with a handful of threads writing, the lock sat idle most
    of the time and a request could wait a second behind a drain that wrote again first
    (measured: the accept path fell from 3,100 to 130 requests/s with the workers on).
    Within one process the threads now queue here instead; SQLite's handler is left for
    other processes. Re-entrant, like the nested use it guards against.

    Between processes (``serve --no-workers`` beside ``omnirelay worker``) the same sleep
    would stall both: with ``lock_path`` the turn also holds an exclusive ``flock`` on
    that file, on which the other process blocks in the kernel and is woken the moment
    it is released (ADR 34). A process killed with the lock loses it with its file
    descriptors; a writer that does not take it (the sqlite3 shell) still meets SQLite's
    busy handler."""

    def __init__(self, lock_path: str | None = None) -> None:
        self._lock_fd = (
            os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if lock_path is not None
            else None
        )
        self._cond = threading.Condition(threading.Lock())
        self._next = 0  # the next ticket to hand out
        self._serving = 0  # the ticket whose turn it is
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()
            self._owner, self._depth = me, 1
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            except BaseException:
                self._release()
                raise

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            if self._depth == 1 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._release()

    def _release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                self._cond.notify_all()


class Database:
    """An engine plus its session factory; one per process."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.engine = create_db_engine(self.url, echo=echo, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        parsed = make_url(self.url)
        # On SQLite, reads get their own connections whose BEGIN does not queue behind
        # the writers; PostgreSQL's MVCC needs no such thing.
        self.read_engine = (
            _sqlite_engine(self.url, parsed.database, echo=echo, read_only=True)
            if parsed.get_backend_name() == "sqlite"
            and parsed.database not in (None, "", ":memory:")
            else self.engine
        )
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        self.write_turns = (
            WriteTurns(
                f"{parsed.database}-writelock"
                if parsed.database not in (None, "", ":memory:")
                else None
            )
            if parsed.get_backend_name() == "sqlite"
            else None
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception. On SQLite the
        process's writers take turns (``WriteTurns``) before BEGIN IMMEDIATE."""
        if self.write_turns is None:
            with self.sessions() as session, session.begin():
                yield session
            return
        with self.write_turns, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (it never commits): on SQLite it does not wait for the
        write lock, so authentication and lookups are not queued behind writers."""
        with self.read_sessions() as session:
            yield session  # closing the session rolls its transaction back

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
