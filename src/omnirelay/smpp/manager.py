"""Runs the SMPP connections this process owns. Every process with workers has one; on
PostgreSQL a lease decides which process runs each connection, and a process that dies is
replaced when its lease lapses."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from omnirelay.channels.smpp.config import SmppConfig
from omnirelay.db import Database, utcnow
from omnirelay.drain import IDLE_INTERVAL, Idle
from omnirelay.messaging.sessions import NOTIFY_CHANNEL
from omnirelay.net.ssrf import IPNetwork, UnsafeURL, check_host
from omnirelay.smpp import repository as repo
from omnirelay.smpp.runner import ConnectionRunner
from omnirelay.wakeup import Listener

log = logging.getLogger(__name__)
LEASE = 30.0  # seconds
REFRESH = 5.0  # seconds between lease renewals and looks for new connections


class SessionManager:
    def __init__(
        self,
        db: Database,
        *,
        owner: str | None = None,
        refresh: float = REFRESH,
        lease: float = LEASE,
        allowed_networks: Sequence[IPNetwork] = (),
        idle_interval: float = IDLE_INTERVAL,
    ) -> None:
        self.db = db
        # The SSRF guard: a tenant's SMSC host is checked again when its session starts,
        # and the session connects to the checked address (docs/security.md).
        self.allowed = tuple(allowed_networks)
        self._configs: dict[int, SmppConfig] = {}  # as stored, before the host was pinned
        self._refused: dict[int, str] = {}
        self.refresh_every = refresh
        # Renewed every ``refresh``: a lease shorter than a few renewals could lapse under
        # a live owner, and two processes would bind the same account.
        self.lease = max(lease, 3 * refresh)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.runners: dict[int, ConnectionRunner] = {}
        # Idle, the loop sleeps longer and longer (ADR 34): a queued message (NOTIFY) or
        # a PDU from an SMSC (the runner's wake) ends the sleep at once.
        self._idle = Idle(0.5, idle_interval)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None

    def start(self) -> SessionManager:
        self._listener = Listener(self.db, NOTIFY_CHANNEL, self._wake.set).start()
        self._thread = threading.Thread(target=self._loop, name="smpp-manager", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._listener is not None:
            self._listener.stop()

    def _loop(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_refresh:
                try:
                    self.refresh()
                except Exception:
                    log.exception("refreshing SMPP connections failed")
                next_refresh = time.monotonic() + self.refresh_every
            busy = False
            for runner in list(self.runners.values()):
                try:
                    runner.step()
                    busy = busy or runner.busy or runner.sessions[0].backlog > 0
                except Exception:
                    log.exception("SMPP connection %s: step failed", runner.connection_id)
            if busy:
                # Under load the answers are written every 20 ms, in batches: a PDU's
                # wake-up must not cut a batch short.
                self._idle.worked()
                self._stop.wait(0.02)
            else:
                until_refresh = max(0.0, next_refresh - time.monotonic())
                if self._wake.wait(self._idle.timeout(until_refresh)):
                    self._idle.worked()
            self._wake.clear()
        for connection_id in list(self.runners):
            self._drop(connection_id)

    def refresh(self) -> None:
        """Take the leases this process can, renew its own, start and stop runners."""
        now = utcnow()
        until = now + timedelta(seconds=self.lease)
        wanted: dict[int, tuple[str, SmppConfig]] = {}
        with self.db.transaction() as session:
            for row in repo.session_connections(session, "smpp"):
                try:
                    config = SmppConfig.from_settings(row.settings)
                except ValueError as exc:
                    log.warning("SMPP connection %s: bad settings: %s", row.id, exc)
                    continue
                if repo.acquire(session, row.id, self.owner, until, now):
                    wanted[row.id] = (row.organization_id, config)
        for connection_id in list(self.runners):
            runner = self.runners[connection_id]
            if connection_id not in wanted or wanted[connection_id][1] != self._configs.get(
                connection_id
            ):
                self._drop(connection_id)
        for connection_id, (organization_id, config) in wanted.items():
            if connection_id not in self.runners:
                pinned = self._pin(connection_id, config)  # DNS: no transaction is open
                if pinned is None:
                    with self.db.transaction() as session:
                        repo.release(session, connection_id, self.owner)
                    continue
                self._configs[connection_id] = config
                runner = ConnectionRunner(
                    self.db, connection_id, organization_id, pinned, self.owner, self._wake.set
                )
                runner.start()
                self.runners[connection_id] = runner

    def _pin(self, connection_id: int, config: SmppConfig) -> SmppConfig | None:
        """The config with its host replaced by the address the guard checked, or None
        when the host is not allowed (logged once per reason)."""
        try:
            address = check_host(config.host, config.port, self.allowed)
        except UnsafeURL as exc:
            if self._refused.get(connection_id) != exc.message:
                self._refused[connection_id] = exc.message
                log.warning("SMPP connection %s: host refused: %s", connection_id, exc.message)
            return None
        self._refused.pop(connection_id, None)
        return replace(config, host=str(address))

    def _drop(self, connection_id: int) -> None:
        self._configs.pop(connection_id, None)
        runner = self.runners.pop(connection_id)
        try:
            runner.stop()
        finally:
            with self.db.transaction() as session:
                repo.release(session, connection_id, self.owner)
