"""An SMSC on loopback for tests and benchmarks, built on ``smpp34`` (an SMPP
implementation the project did not write): it accepts every submit_sm, records it, and
sends a delivery receipt back after ``receipt_delay`` seconds. Runs its own event loop in
a thread. Messages to numbers ending in ``9999`` get an UNDELIV receipt.

Like a real SMSC it keeps a receipt it could not deliver (the ESME was gone, or answered
with an error) and sends it again when an ESME binds; :meth:`restarted` is the same SMSC
after a restart: same port, its message ids continue, and its undelivered receipts kept."""

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
    ) -> None:
        self.port = port or free_port()
        self.receipt_delay = receipt_delay
        self.receipts = receipts
        self.received: list[Received] = []
        self.on_submit: Callable[[Received], int | None] | None = None  # a status to reject with
        self._ids = itertools.count(first_id)
        self.undelivered: list[Received] = []  # receipts to send again at the next bind
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self._sessions: dict[str, Any] = {}
        self._main: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    def start(self) -> Smsc:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = smpp34.Server("127.0.0.1", self.port, system_id="testsmsc")
        await self._server.start()
        self._main = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            ev = await self._server.next()
            if isinstance(ev, smpp34.Esme):
                self._sessions[ev.session_id] = ev
                waiting, self.undelivered = self.undelivered, []
                for rec in waiting:
                    self._spawn(self._receipt(rec))
            elif isinstance(ev, smpp34.SubmitSmEvent):
                self._submit(ev)
            elif isinstance(ev, smpp34.Unbound):
                self._sessions.pop(ev.session_id, None)

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
            asyncio.get_running_loop().call_later(
                self.receipt_delay, lambda: self._spawn(self._receipt(rec))
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # a reference, so the task is not collected while it runs
        task.add_done_callback(self._tasks.discard)

    async def _receipt(self, rec: Received) -> None:
        # To the session that submitted, else to any bound one (as SMSCs route receipts
        # to any receiver of the account).
        esme = self._sessions.get(rec.session_id) or next(iter(self._sessions.values()), None)
        if esme is None:
            self.undelivered.append(rec)
            return
        stat = "UNDELIV" if rec.destination.endswith("9999") else "DELIVRD"
        text = (
            f"id:{rec.message_id} sub:001 dlvrd:001 submit date:2611230000 "
            f"done date:2611230000 stat:{stat} err:000 text:"
        )
        try:
            await esme.deliver_sm(
                source_addr=rec.destination,
                destination_addr=rec.source,
                esm_class=0x04,
                short_message=text.encode(),
            )
        except Exception:
            self.undelivered.append(rec)  # refused, or the session ended: keep it

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
        )
        after.undelivered = list(self.undelivered)
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
            if self._main is not None:
                self._main.cancel()
            for esme in list(self._sessions.values()):
                # End the sessions too: a stopped server answers nothing any more.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(esme.unbind(), 2)
            await self._server.stop()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> Smsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
