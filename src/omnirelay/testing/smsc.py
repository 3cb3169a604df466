"""An SMSC on loopback for tests and benchmarks, built on ``smpp34`` (an SMPP
implementation the project did not write): it accepts every submit_sm, records it, and
sends a delivery receipt back after ``receipt_delay`` seconds. Runs its own event loop in
a thread. Messages to numbers ending in ``9999`` get an UNDELIV receipt.

Like a real SMSC it owes a receipt until an ESME acknowledges it (deliver_sm_resp OK): one
it could not deliver (no ESME bound, the session ended, an error or no answer) is sent
again when an ESME binds and, while one is bound, every ``retry_interval`` seconds.
:meth:`restarted` is the same SMSC after a restart: same port, its message ids continue,
and every receipt it still owed is kept: not yet sent, sent but not acknowledged, or
undelivered."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import smpp34


@dataclass(frozen=True)
class Received:
    source: str
    destination: str
    data_coding: int
    esm_class: int
    short_message: bytes
    tlvs: dict[int, bytes]
    message_id: str
    session_id: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Smsc:
    def __init__(
        self,
        *,
        port: int | None = None,
        receipt_delay: float = 0.0,
        receipts: bool = True,
        first_id: int = 1,
        retry_interval: float = 1.0,
    ) -> None:
        self.port = port or free_port()
        self.receipt_delay = receipt_delay
        self.receipts = receipts
        self.retry_interval = retry_interval
        self.received: list[Received] = []
        self.on_submit: Callable[[Received], int | None] | None = None  # a status to reject with
        self._ids = itertools.count(first_id)
        self.undelivered: list[Received] = []  # receipts to send again (at a bind, a retry)
        # Every receipt not acknowledged yet, by message id: scheduled, in flight, or
        # undelivered. What a stop leaves here is what the restarted SMSC still owes.
        self._owed: dict[str, Received] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self._sessions: dict[str, Any] = {}
        self._main: asyncio.Task[None] | None = None
        self._retrier: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    def start(self) -> Smsc:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = smpp34.Server("127.0.0.1", self.port, system_id="testsmsc")
        await self._server.start()
        self._main = asyncio.create_task(self._serve())
        self._retrier = asyncio.create_task(self._retry())

    async def _serve(self) -> None:
        while True:
            ev = await self._server.next()
            if isinstance(ev, smpp34.Esme):
                self._sessions[ev.session_id] = ev
                self._send_undelivered()
            elif isinstance(ev, smpp34.SubmitSmEvent):
                self._submit(ev)
            elif isinstance(ev, smpp34.Unbound):
                self._sessions.pop(ev.session_id, None)

    def _send_undelivered(self) -> None:
        waiting, self.undelivered = self.undelivered, []
        for rec in waiting:
            self._spawn(self._receipt(rec))

    async def _retry(self) -> None:
        # A receipt that failed while an ESME was (or is again) bound is not left until
        # the next bind: its session may have ended after another one had bound.
        while True:
            await asyncio.sleep(self.retry_interval)
            if self._sessions:
                self._send_undelivered()

    def _submit(self, ev: Any) -> None:
        message_id = f"{next(self._ids):08x}"
        rec = Received(
            ev.source_addr,
            ev.destination_addr,
            ev.data_coding,
            ev.esm_class,
            bytes(ev.short_message),
            {t.tag: bytes(t.value) for t in ev.tlvs},
            message_id,
            ev.session_id,
        )
        status = self.on_submit(rec) if self.on_submit else None
        if status:
            ev.reject(status)
            return
        ev.accept(message_id=message_id)
        self.received.append(rec)
        if self.receipts:
            self._owed[message_id] = rec
            asyncio.get_running_loop().call_later(
                self.receipt_delay, lambda: self._spawn(self._receipt(rec))
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # a reference, so the task is not collected while it runs
        task.add_done_callback(self._tasks.discard)

    def _esme_for(self, rec: Received) -> Any:
        # To the session that submitted, else to any bound one that receives, the newest
        # first (as SMSCs route receipts to any receiver of the account).
        own = self._sessions.get(rec.session_id)
        if own is not None and own.can_receive:
            return own
        receivers = [e for e in self._sessions.values() if e.can_receive]
        return receivers[-1] if receivers else None

    def _keep(self, rec: Received) -> None:
        self._owed[rec.message_id] = rec
        self.undelivered.append(rec)

    async def _receipt(self, rec: Received) -> None:
        esme = self._esme_for(rec)
        if esme is None:
            self._keep(rec)
            return
        stat = "UNDELIV" if rec.destination.endswith("9999") else "DELIVRD"
        text = (
            f"id:{rec.message_id} sub:001 dlvrd:001 submit date:2611230000 "
            f"done date:2611230000 stat:{stat} err:000 text:"
        )
        try:
            resp = await esme.deliver_sm(
                source_addr=rec.destination,
                destination_addr=rec.source,
                esm_class=0x04,
                short_message=text.encode(),
            )
        except Exception:
            resp = None  # the session ended, or no answer in time
        if resp is not None and resp.is_success:
            self._owed.pop(rec.message_id, None)
        else:
            self._keep(rec)  # refused, unanswered, or the session ended: still owed

    def receipt(self, rec: Received) -> None:
        """Send the delivery receipt of ``rec`` now (when ``receipts`` is off)."""
        asyncio.run_coroutine_threadsafe(self._receipt(rec), self._loop).result(10)

    def restarted(self) -> Smsc:
        """A new SMSC on this one's port (stopped first) that carries on where it left off."""
        after = Smsc(
            port=self.port,
            receipt_delay=self.receipt_delay,
            receipts=self.receipts,
            first_id=next(self._ids),
            retry_interval=self.retry_interval,
        )
        after.undelivered = list(self._owed.values())
        after._owed = dict(self._owed)
        return after

    def mo(self, source: str, destination: str, text: str) -> None:
        """An end user's message to the first bound ESME."""

        async def send() -> None:
            for esme in list(self._sessions.values()):
                await esme.deliver_sm(
                    source_addr=source,
                    destination_addr=destination,
                    short_message=text.encode(),
                    data_coding=0,
                )
                return

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def stop(self) -> None:
        async def shut() -> None:
            for task in (self._main, self._retrier):
                if task is not None:
                    task.cancel()
            for esme in list(self._sessions.values()):
                # End the sessions too: a stopped server answers nothing any more.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(esme.unbind(), 2)
            await self._server.stop()
            # Receipts still in flight were not acknowledged: they stay owed (``_owed``),
            # like those not sent yet, and a restarted SMSC sends them.
            pending = list(self._tasks)
            for receipt in pending:
                receipt.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> Smsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
