"""``Database.read``: a read-only unit of work that sees the last commit and, on SQLite,
does not queue behind a writer that holds the write lock."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from omnirelay.db import Database
from omnirelay.tenancy.models import Organization


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
