"""Wake-ups after commit: ``NOTIFY`` on PostgreSQL (crosses processes), an in-process
condition on SQLite (one process owns an SQLite database anyway).

``notify(session, channel)`` inside a transaction wakes listeners when it commits;
``Listener`` runs a thread that calls back on every wake-up of its channel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from omnirelay.db import Database

log = logging.getLogger(__name__)


class _LocalChannel:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, timeout)
            return self.generation


_local: dict[str, _LocalChannel] = {}
_local_lock = threading.Lock()


def _channel(name: str) -> _LocalChannel:
    with _local_lock:
        return _local.setdefault(name, _LocalChannel())


def notify(session: Session, channel: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": channel})
        return
    pending: set[str] = session.info.setdefault("omnirelay_notify", set())
    if not pending:
        event.listen(session, "after_commit", _after_commit, once=True)
        event.listen(session, "after_rollback", _after_rollback, once=True)
    pending.add(channel)


def _after_commit(session: Session) -> None:
    for name in session.info.pop("omnirelay_notify", ()):
        _channel(name).notify()


def _after_rollback(session: Session) -> None:
    session.info.pop("omnirelay_notify", None)


class Listener:
    """Calls ``callback`` (from its own thread) whenever ``channel`` is notified."""

    def __init__(self, db: Database, channel: str, callback: Callable[[], None]) -> None:
        self.db = db
        self.channel = channel
        self.callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        if self.db.is_postgresql:
            self._run_postgres()
            return
        local = _channel(self.channel)
        seen = local.generation
        while not self._stop.is_set():
            now = local.wait(seen, 0.5)
            if now != seen:
                seen = now
                self.callback()

    def _run_postgres(self) -> None:
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql")
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    url.render_as_string(hide_password=False), autocommit=True
                ) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.callback()  # anything notified while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.callback()
            except Exception:
                log.warning("LISTEN %s lost; reconnecting", self.channel, exc_info=True)
                self._stop.wait(1.0)
