"""``Database.read``: a read-only unit of work that sees the last commit and, on SQLite,
does not queue behind a writer that holds the write lock."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from omnirelay import wakeup
from omnirelay.db import Database
from omnirelay.tenancy.models import Organization
from omnirelay.wakeup import Listener


def test_read_sees_the_last_commit_while_a_writer_holds_the_lock(db: Database) -> None:
    with db.transaction() as session:
        session.add(Organization(name="committed"))
    with db.transaction() as writer:
        writer.add(Organization(name="not yet"))
        writer.flush()  # SQLite: this transaction holds the write lock until it ends
        # Same thread: had the read waited for the lock, this would fail as "locked".
        with db.read() as reader:
            names = reader.scalars(select(Organization.name)).all()
        assert "committed" in names and "not yet" not in names
    with db.read() as reader:
        assert reader.scalar(select(func.count()).select_from(Organization)) == 2


def test_read_never_writes(db: Database) -> None:
    with db.read() as reader:
        reader.add(Organization(name="sneaky"))
        if db.is_sqlite:  # the read connection is query_only
            with pytest.raises(Exception, match=r"readonly|read-only|query_only"):
                reader.flush()
    # Whatever the engine, nothing a read session did is committed.
    with db.read() as reader:
        count = reader.scalar(
            select(func.count()).select_from(Organization).where(Organization.name == "sneaky")
        )
        assert count == 0
        assert reader.execute(text("SELECT 1")).scalar() == 1


def test_sqlite_writers_of_two_processes_take_turns_on_a_file_lock(tmp_path: Path) -> None:
    """Two processes on one SQLite file (``serve --no-workers`` beside a worker) queue for
    the write lock on a file lock, woken when it is released, not by SQLite's sleeping
    busy handler (ADR 34); a killed holder's lock goes with its file descriptors."""
    path = tmp_path / "two.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.transaction() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
        other = os.open(f"{path}-writelock", os.O_RDWR)  # what another process opens
        try:
            with database.transaction() as session:
                session.execute(text("INSERT INTO t VALUES (1)"))
                with pytest.raises(BlockingIOError):  # held for the whole transaction
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at commit
            fcntl.flock(other, fcntl.LOCK_UN)
            with pytest.raises(RuntimeError), database.transaction() as session:
                session.execute(text("INSERT INTO t VALUES (2)"))
                raise RuntimeError("rolled back")
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at rollback too
            fcntl.flock(other, fcntl.LOCK_UN)
        finally:
            os.close(other)
        with database.read() as reader:
            assert reader.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        database.dispose()


@pytest.mark.parametrize("depth", ["near", "deep"])
def test_a_commit_in_another_process_wakes_a_listener_on_the_same_sqlite_file(
    tmp_path: Path, depth: str
) -> None:
    """``serve --no-workers`` commits a message, the worker process's drain wakes (ADR 34):
    on SQLite through a datagram to the listening process's socket. A file so deep that a
    socket beside it would pass the 107-byte limit still gets its wake-ups."""
    folder = tmp_path if depth == "near" else tmp_path / ("nested-" * 12) / ("folder-" * 6)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "two.db"
    url = f"sqlite:///{path}"
    database = Database(url)
    woke = threading.Event()
    listener = Listener(database, "test_wake", woke.set).start()
    try:
        child = (
            "import sys\n"
            "from omnirelay.db import Database\n"
            "from omnirelay import wakeup\n"
            "db = Database(sys.argv[1])\n"
            "with db.transaction() as session:\n"
            "    wakeup.notify(session, 'test_wake')\n"
        )
        subprocess.run([sys.executable, "-c", child, url], check=True, timeout=60)
        assert woke.wait(30)  # a bound, not a measure: it comes at once or never
    finally:
        listener.stop()
        database.dispose()
    sockets = wakeup._wake_dir(str(path))
    assert sockets is not None and len(str(sockets)) < 80
    assert not any(sockets.iterdir())  # the socket is removed on stop
