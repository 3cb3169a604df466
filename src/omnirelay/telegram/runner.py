"""The Telegram runner of a worker process: connects each bot when its connection is
created or changed (setWebhook with a public URL, else deleteWebhook), and long-polls
getUpdates for the bots without a public URL. Started by runtime.py.

Every Bot API call is made with no transaction open; the results are written after,
each in its own short transaction. One process holds each bot (a lease in
telegram_state), since Telegram answers a second concurrent getUpdates with 409.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from omnirelay.channels.base import PermanentError, RetriableError, get_adapter
from omnirelay.channels.telegram import TelegramAdapter, TelegramConfig
from omnirelay.channels.telegram_updates import update_id
from omnirelay.db import Database, utcnow
from omnirelay.telegram import repository as repo
from omnirelay.telegram import service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bot:
    connection_id: int
    organization_id: str
    config: TelegramConfig
    hook: str | None  # the webhook URL, or None: long polling
    fingerprint: str
    connected: str | None
    next_offset: int


class TelegramRunner:
    def __init__(
        self,
        db: Database,
        *,
        wait: float = 25.0,
        lease: float = 60.0,
        refresh: float = 2.0,
        owner: str | None = None,
        adapter: TelegramAdapter | None = None,
    ) -> None:
        self.db = db
        self.wait = wait  # getUpdates long poll, seconds
        self.lease = lease
        self.refresh = refresh
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        found = adapter or get_adapter("telegram")
        assert isinstance(found, TelegramAdapter)
        self.adapter = found
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pollers: dict[int, threading.Thread] = {}
        self._held: set[int] = set()

    # -- one pass (the tests drive it) --

    def bots(self) -> list[Bot]:
        """The telegram connections this process holds now (leases taken or renewed).
        A read first: with no bot configured, no write transaction (SQLite's lock)."""
        with self.db.read() as session:
            found = [(c.id, c.organization_id, dict(c.settings)) for c in repo.connections(session)]
        configs: list[tuple[int, str, TelegramConfig]] = []
        for connection_id, organization_id, settings in found:
            try:
                configs.append(
                    (connection_id, organization_id, TelegramConfig.from_settings(settings))
                )
            except ValueError:
                continue  # stored by an older version: shown by the API, not polled
        if not configs:
            return []
        now = utcnow()
        until = now + timedelta(seconds=self.lease)
        out: list[Bot] = []
        with self.db.transaction() as session:
            for connection_id, organization_id, config in configs:
                row = service.state(session, connection_id, organization_id)
                if not service.lease(session, connection_id, self.owner, now, until):
                    continue
                session.refresh(row)
                self._held.add(connection_id)
                out.append(
                    Bot(
                        connection_id,
                        organization_id,
                        config,
                        service.hook_url(connection_id, config.webhook_url),
                        service.fingerprint(connection_id, config),
                        row.connected,
                        row.next_offset,
                    )
                )
        return out

    def connect(self, bot: Bot) -> bool:
        """setWebhook / deleteWebhook if the settings changed since the last connect."""
        if bot.connected == bot.fingerprint:
            return True
        try:
            self.adapter.connect(bot.config, bot.hook)
        except (RetriableError, PermanentError) as exc:
            with self.db.transaction() as session:
                service.record(session, bot.connection_id, error=f"connect: {exc}")
            return False
        with self.db.transaction() as session:
            service.record(session, bot.connection_id, connected=bot.fingerprint, error=None)
        return True

    def poll(self, bot: Bot, wait: float) -> int:
        """One getUpdates from the stored offset; the updates and the next offset stored
        together. How many updates were stored."""
        try:
            updates = self.adapter.get_updates(bot.config, bot.next_offset, wait)
        except (RetriableError, PermanentError) as exc:
            with self.db.transaction() as session:
                service.record(session, bot.connection_id, error=f"getUpdates: {exc}")
            raise
        ids = [i for i in (update_id(u) for u in updates) if i is not None]
        next_offset = max(ids) + 1 if ids else bot.next_offset
        with self.db.transaction() as session:
            stored = service.store_poll(
                session, bot.connection_id, self.owner, updates, next_offset
            )
        return len(updates) if stored else 0

    def run_once(self, wait: float = 0.0) -> int:
        """Connect what changed; poll each polling bot once. Updates stored."""
        total = 0
        for bot in self.bots():
            if self.connect(bot) and bot.hook is None:
                try:
                    total += self.poll(bot, wait)
                except (RetriableError, PermanentError):
                    continue
        return total

    # -- the background threads --

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="telegram-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for thread in list(self._pollers.values()):
            thread.join(timeout)
        self._pollers.clear()
        try:
            with self.db.transaction() as session:
                for connection_id in list(self._held):
                    repo.release(session, connection_id, self.owner)
        except Exception:
            log.warning("telegram: could not release leases", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                bots = self.bots()
            except Exception:
                log.warning("telegram: listing bots failed", exc_info=True)
                self._stop.wait(self.refresh)
                continue
            for bot in bots:
                if not self.connect(bot) or bot.hook is not None:
                    continue
                thread = self._pollers.get(bot.connection_id)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(
                        target=self._poll_loop,
                        args=(bot.connection_id,),
                        name=f"telegram-poll-{bot.connection_id}",
                        daemon=True,
                    )
                    self._pollers[bot.connection_id] = thread
                    thread.start()
            self._stop.wait(self.refresh)

    def _current(self, connection_id: int) -> Bot | None:
        for bot in self.bots():
            if bot.connection_id == connection_id:
                return bot
        return None

    def _poll_loop(self, connection_id: int) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            bot = self._current(connection_id)
            if bot is None or bot.hook is not None or bot.connected != bot.fingerprint:
                return  # removed, moved to a webhook, or not connected: the loop decides
            try:
                self.poll(bot, self.wait)
                backoff = 1.0
            except RetriableError as exc:
                self._stop.wait(exc.delay if exc.delay is not None else backoff)
                backoff = min(backoff * 2, 60.0)
            except PermanentError:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
            except Exception:
                log.warning("telegram: poll of %s failed", connection_id, exc_info=True)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
