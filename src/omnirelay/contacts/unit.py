"""A unit of work on contacts, run again when it loses a race.

Two transactions may give the same new channel id to two contacts at once (PostgreSQL:
neither sees the other's row yet). The unique index lets only one commit; the other
fails on it and is run again from the start, when it sees that contact and merges into
it instead. So a channel id is never held twice and the request still succeeds."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from omnirelay.db import Database

T = TypeVar("T")
ATTEMPTS = 5
_RETRIABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock


def _retriable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRIABLE_SQLSTATES


def run(db: Database, work: Callable[[Session], T]) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with db.transaction() as session:
                return work(session)
        except DBAPIError as exc:
            if attempt == ATTEMPTS or not _retriable(exc):
                raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))  # apart, not in step again
    raise AssertionError("unreachable")
