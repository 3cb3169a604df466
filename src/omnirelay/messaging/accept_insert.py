"""The accept path's INSERT of messages with its parameters made before the write lock.

SQLAlchemy turns each row of an executemany into driver values (datetimes to UTC and, on
SQLite, to text; the route to JSON) while the statement executes, that is inside the
transaction: on SQLite, with the one write lock held (measured: a quarter of the accept
writer's time under load, ADR 41). :class:`PreparedInsert` applies the same bind
processors of the same column types to a row when the row is made, and the write
transaction hands the finished values to the driver's ``executemany`` as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from omnirelay.messaging.repository import MESSAGES

Params = tuple[Any, ...] | dict[str, Any]


class PreparedInsert:
    """``INSERT INTO messages (keys...)`` compiled once for a dialect."""

    def __init__(self, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = insert(MESSAGES).compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        # Bind names are the column names here (an INSERT of plain columns).
        order = list(compiled.positiontup or []) if self.positional else list(keys)
        self.order = order
        self.processors: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, MESSAGES.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in order
        ]

    def params(self, row: dict[str, Any]) -> Params:
        """The driver's values of ``row`` (every key of the compiled statement)."""
        values = [row[name] if p is None else p(row[name]) for name, p in self.processors]
        return tuple(values) if self.positional else dict(zip(self.order, values, strict=True))

    def execute(self, session: Session, params: Sequence[Params]) -> None:
        if params:
            session.connection().exec_driver_sql(self.sql, list(params))


_cache: dict[tuple[str, tuple[str, ...]], PreparedInsert] = {}


def prepared(dialect: Dialect, keys: Sequence[str]) -> PreparedInsert:
    key = (dialect.name, tuple(keys))
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = PreparedInsert(dialect, keys)
    return found


def insert_prepared(
    session: Session, rows: Sequence[dict[str, Any]], params: Sequence[Params]
) -> None:
    """One executemany of ``params`` (made by :func:`prepared` from ``rows``, same order);
    ``rows`` say what is inserted (the ids), for the caller and its tests."""
    if rows:
        prepared(session.get_bind().dialect, list(rows[0])).execute(session, params)
