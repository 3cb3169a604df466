"""Web chat notices across processes (ADR 44): "a send to this visitor is committed"
and "show the visitor this frame" (the operator's typing and read), for the sockets of
every omnirelay process on the database.

A notice is announced inside the transaction that makes it true, so it is heard only
after the commit: the dispatch transaction that records a webchat send as ``sent``
(the adapter's ``SendResult.notices``), or the operator's request. PostgreSQL: ``NOTIFY``,
heard on one async psycopg connection per event loop that has sockets (``Ear``); SQLite:
wakeup.announce / wakeup.subscribe (the process's own commits, and datagrams from the
other processes on the file). The socket's database poll stays as a slow safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.db import Database
from omnirelay.webchat.hub import HUB

log = logging.getLogger(__name__)

CHANNEL = "omnirelay_webchat"


def payload(key: str, visitor: str, frame: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"k": key, "v": visitor}
    if frame is not None:
        body["f"] = frame
    return json.dumps(body, separators=(",", ":"))


def announce(session: Session, key: str, visitor: str, frame: dict[str, Any] | None = None) -> None:
    """Inside a transaction: after it commits, the visitor's sockets on every process
    read their waiting sends (``frame`` None) or get ``frame``."""
    wakeup.announce(session, CHANNEL, payload(key, visitor, frame))


def heard(raw: str) -> None:
    """A notice reached this process: hand it to the hub (any thread)."""
    try:
        body = json.loads(raw)
        key, visitor, frame = str(body["k"]), str(body["v"]), body.get("f")
    except (ValueError, KeyError, TypeError):
        log.warning("a malformed web chat notice: %.100r", raw)
        return
    if isinstance(frame, dict):
        HUB.event(key, visitor, **frame)
    else:
        HUB.wake(key, visitor)


class Ear:
    """What one event loop hears while it has sockets: PostgreSQL LISTEN on an async
    psycopg connection (reconnecting; every socket of the loop re-reads its waiting sends
    once listening, for what was announced before), or the SQLite subscription."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = 0
        self._task: asyncio.Task[None] | None = None
        self._end: Callable[[], None] | None = None

    def start(self) -> None:
        if self.db.is_postgresql:
            self._task = asyncio.get_running_loop().create_task(self._listen())
        else:
            self._end = wakeup.subscribe(self.db, CHANNEL, heard)

    async def stop(self) -> None:
        if self._end is not None:
            self._end()
            self._end = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    HUB.wake_all()  # what was announced before we listened
                    async for notice in conn.notifies():
                        heard(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("web chat LISTEN lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


_ears: dict[tuple[int, int], Ear] = {}


async def attach(db: Database) -> tuple[int, int]:
    """A socket opens on this loop: the loop's ear, started with its first socket."""
    key = (id(asyncio.get_running_loop()), id(db))
    ear = _ears.get(key)
    if ear is None:
        ear = _ears[key] = Ear(db)
        ear.start()
    ear.users += 1
    return key


async def detach(key: tuple[int, int]) -> None:
    """A socket closed: the ear stops with the loop's last socket."""
    ear = _ears.get(key)
    if ear is None:
        return
    ear.users -= 1
    if ear.users <= 0:
        del _ears[key]
        await ear.stop()
