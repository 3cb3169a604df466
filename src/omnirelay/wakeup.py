"""Wake-ups after commit: ``NOTIFY`` on PostgreSQL (crosses processes); on SQLite an
in-process condition, and an empty datagram to the other processes on the same file
(``serve --no-workers`` beside ``omnirelay worker``, ADR 34).

``notify(session, channel)`` inside a transaction wakes listeners when it commits;
``Listener`` runs a thread that calls back on every wake-up of its channel.

On SQLite each process that listens on a channel binds one Unix datagram socket,
``<database>-wake/<channel>.<pid>`` (a short folder in the temporary folder when that
path would be too long for a socket); a datagram on it notifies the process's in-process
channel. A commit sends one datagram to every other process's socket of the channel (the
folder is listed at most once a second); a socket left by a killed process is removed by
the first sender it refuses.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

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

    def poke(self) -> None:
        """Wake the waiters without a notification (one of them is stopping)."""
        with self._cond:
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float, stop: threading.Event) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen or stop.is_set(), timeout)
            return self.generation


_local: dict[str, _LocalChannel] = {}
_local_lock = threading.Lock()


def _channel(name: str) -> _LocalChannel:
    with _local_lock:
        return _local.setdefault(name, _LocalChannel())


# A Unix socket path holds at most 107 bytes; "/<channel>.<pid>" needs up to about 40.
_MAX_WAKE_DIR = 64


def _wake_dir(database: str | None) -> Path | None:
    """The folder of the SQLite file's wake-up sockets (None: an in-memory database). A
    folder beside a deeply nested file would be too long for a socket path: then one in the
    temporary folder named by a digest of the file's real path, so every process of the
    file still finds the same one."""
    if not database or database == ":memory:":
        return None
    beside = Path(f"{database}-wake")
    if len(os.fsencode(beside)) <= _MAX_WAKE_DIR:
        return beside
    digest = hashlib.sha256(os.fsencode(os.path.realpath(database))).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"omnirelay-wake-{digest}"


class _Peers:
    """Sends a wake-up datagram to the other processes listening on a channel."""

    REFRESH = 1.0  # seconds a listing of the folder is used

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._seen: dict[tuple[Path, str], tuple[float, list[str]]] = {}
        self._mine = f".{os.getpid()}"

    def _targets(self, folder: Path, channel: str) -> list[str]:
        key = (folder, channel)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.REFRESH:
                return seen[1]
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        prefix = f"{channel}."
        targets = [
            str(folder / n) for n in names if n.startswith(prefix) and not n.endswith(self._mine)
        ]
        with self._lock:
            self._seen[key] = (now, targets)
        return targets

    def send(self, folder: Path, channel: str, payload: bytes = b"") -> None:
        for path in self._targets(folder, channel):
            try:
                self._sock.sendto(payload, path)
            except BlockingIOError:
                pass  # its queue is full: it has wake-ups waiting already
            except (ConnectionRefusedError, FileNotFoundError):
                # Its process is gone (killed): forget it, and remove its socket file.
                with self._lock:
                    self._seen.pop((folder, channel), None)
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except OSError:
                log.debug("wake-up of %s failed", path, exc_info=True)


_peers: _Peers | None = None


def _peer_sender() -> _Peers:
    global _peers
    if _peers is None or _peers._mine != f".{os.getpid()}":  # a fork gets its own
        _peers = _Peers()
    return _peers


def notify(session: Session, channel: str) -> None:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, '')"), {"c": channel})
        return
    pending: dict[str, Path | None] = session.info.setdefault("omnirelay_notify", {})
    if not pending and not session.info.get("omnirelay_announce"):
        event.listen(session, "after_commit", _after_commit, once=True)
        event.listen(session, "after_rollback", _after_rollback, once=True)
    pending[channel] = _wake_dir(bind.engine.url.database)


def _after_commit(session: Session) -> None:
    pending: dict[str, Path | None] = session.info.pop("omnirelay_notify", {})
    for name, folder in pending.items():
        _channel(name).notify()
        if folder is not None:
            _peer_sender().send(folder, name)
    notices: list[tuple[str, str, Path | None]] = session.info.pop("omnirelay_announce", [])
    for name, payload, folder in notices:
        _deliver(name, payload)
        if folder is not None:
            _peer_sender().send(folder, name, payload.encode())


# --- notices with a payload (announce / subscribe) --------------------------------------
# A payload says what changed (the web chat: which visitor), so a listener need not
# look everywhere. PostgreSQL: ``pg_notify(channel, payload)``, heard by LISTEN (the
# web chat listens on an async psycopg connection of its own). SQLite: after commit the
# process's subscribers are called, and the payload is the datagram to the other
# processes' relays of the channel, which call theirs.

MAX_PAYLOAD = 4000  # bytes; PostgreSQL's limit is 8000, a datagram's is larger

_subscribers: dict[str, set[Callable[[str], None]]] = {}


def announce(session: Session, channel: str, payload: str) -> None:
    """Inside a transaction: ``payload`` to the channel's listeners once it commits
    (nothing on a rollback)."""
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError(f"a notice payload is at most {MAX_PAYLOAD} bytes")
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
        return
    pending: list[tuple[str, str, Path | None]] = session.info.setdefault("omnirelay_announce", [])
    if not pending and not session.info.get("omnirelay_notify"):
        event.listen(session, "after_commit", _after_commit, once=True)
        event.listen(session, "after_rollback", _after_rollback, once=True)
    pending.append((channel, payload, _wake_dir(bind.engine.url.database)))


def _deliver(channel: str, payload: str) -> None:
    with _local_lock:
        callbacks = list(_subscribers.get(channel, ()))
    for callback in callbacks:
        try:
            callback(payload)
        except Exception:
            log.exception("a subscriber of %s failed", channel)


def subscribe(db: Database, channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
    """SQLite: ``callback(payload)`` for every notice of the channel, this process's
    (in the committing thread) and other processes' (in the relay's thread); returns
    the function that ends it. On PostgreSQL listen with LISTEN instead."""
    relay = None
    folder = _wake_dir(db.engine.url.database)
    if folder is not None:
        relay = _acquire_relay(folder, channel)
    with _local_lock:
        _subscribers.setdefault(channel, set()).add(callback)

    def end() -> None:
        with _local_lock:
            _subscribers.get(channel, set()).discard(callback)
        if relay is not None:
            _release_relay(relay)

    return end


class _Relay:
    """This process's socket for one channel of one SQLite file: a datagram from another
    process notifies the in-process channel. Shared by the process's listeners."""

    def __init__(self, folder: Path, channel: str) -> None:
        self.path = str(folder / f"{channel}.{os.getpid()}")
        self.channel = channel
        self.users = 0
        self._stopping = False
        folder.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by an earlier process with this pid: it is dead
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._thread = threading.Thread(target=self._run, name=f"wake-{channel}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if self._stopping:
                return
            _channel(self.channel).notify()
            if data:  # a notice with a payload (announce)
                _deliver(self.channel, data.decode("utf-8", "replace"))

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # ends the blocked recv
        self._sock.close()
        self._thread.join(5)


_relays: dict[str, _Relay] = {}


def _acquire_relay(folder: Path, channel: str) -> _Relay | None:
    with _local_lock:
        relay = _relays.get(str(folder / channel))
        if relay is None:
            try:
                relay = _Relay(folder, channel)
            except OSError:
                # A path too long for a Unix socket, a read-only folder: this process is
                # then woken by its own commits and its polls only.
                log.warning("no cross-process wake-ups for %s in %s", channel, folder)
                return None
            _relays[str(folder / channel)] = relay
        relay.users += 1
        return relay


def _release_relay(relay: _Relay) -> None:
    with _local_lock:
        relay.users -= 1
        if relay.users > 0:
            return
        _relays.pop(str(Path(relay.path).parent / relay.channel), None)
    relay.close()


@atexit.register
def _close_relays() -> None:
    for relay in list(_relays.values()):
        with contextlib.suppress(OSError):
            os.unlink(relay.path)


def _after_rollback(session: Session) -> None:
    session.info.pop("omnirelay_notify", None)
    session.info.pop("omnirelay_announce", None)


class Listener:
    """Calls ``callback`` (from its own thread) whenever ``channel`` is notified."""

    def __init__(self, db: Database, channel: str, callback: Callable[[], None]) -> None:
        self.db = db
        self.channel = channel
        self.callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)
        self._relay: _Relay | None = None

    def start(self) -> Listener:
        if not self.db.is_postgresql:
            folder = _wake_dir(self.db.engine.url.database)
            if folder is not None:
                self._relay = _acquire_relay(folder, self.channel)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if not self.db.is_postgresql:
            _channel(self.channel).poke()
        self._thread.join(5)
        if self._relay is not None:
            _release_relay(self._relay)
            self._relay = None

    def _run(self) -> None:
        if self.db.is_postgresql:
            self._run_postgres()
            return
        local = _channel(self.channel)
        seen = local.generation
        while not self._stop.is_set():
            # A long wait: notify and stop both wake it; an idle listener costs nothing.
            now = local.wait(seen, 60.0, self._stop)
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
                        for _ in conn.notifies(timeout=2.0, stop_after=1):
                            self.callback()
            except Exception:
                log.warning("LISTEN %s lost; reconnecting", self.channel, exc_info=True)
                self._stop.wait(1.0)
