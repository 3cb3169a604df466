"""The ESME side of one SMPP session: bind, a window of submit_sm in flight, a throughput
limit, enquire_link keep-alive, response timeouts, reconnect with backoff, clean unbind.

Threads: ``run`` connects, binds and writes (submissions, keep-alives, timeouts); a
reader thread reads PDUs. The owner gets results through ``SessionEvents``; this module
never touches the database. PDUs are built and parsed with ``smpplib``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import smpplib.client
import smpplib.consts as c
import smpplib.smpp

from omnirelay.channels.smpp.config import SmppConfig
from omnirelay.channels.smpp.encoding import Part

log = logging.getLogger(__name__)

THROTTLED = (c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL)  # 0x58, 0x14: pause, retry
TRANSIENT = (c.SMPP_ESME_RSYSERR, 0x00000045)  # system error, submit failed: retry
MAX_PDU = 65536


@dataclass
class Submission:
    key: Any  # the owner's reference (an attempt id)
    part_no: int
    destination: str
    source: str
    part: Part
    tries: int = 0


@dataclass(frozen=True)
class Inbound:
    """A deliver_sm, as plain data."""

    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None


class SessionEvents(Protocol):
    def submitted(self, sub: Submission, message_id: str) -> None: ...

    def refused(self, sub: Submission, status: int, reason: str) -> None: ...

    def received(self, inbound: Inbound, ack: Callable[[], None]) -> None:
        """Persist, then call ``ack`` (the deliver_sm_resp is sent only then)."""
        ...

    def state(self, state: str, error: str | None) -> None: ...


class _Client(smpplib.client.Client):  # type: ignore[misc]
    """smpplib's client with framing checked before parsing: a garbage PDU is answered
    with generic_nack (or drops the link when the stream cannot be framed)."""

    def read_raw(self) -> bytes:
        head = self._recv_exact(4)
        (length,) = struct.unpack(">L", head)
        if not 16 <= length <= MAX_PDU:
            raise smpplib.exceptions.ConnectionError(f"unframable PDU length {length}")
        raw: bytes = head + self._recv_exact(length - 4)
        return raw


class SmppSession:
    def __init__(
        self,
        config: SmppConfig,
        events: SessionEvents,
        *,
        role: str = "transceiver",
        name: str = "smpp",
    ) -> None:
        self.config = config
        self.events = events
        self.role = role  # transceiver | transmitter | receiver
        self.name = name
        self._queue: deque[Submission] = deque()
        self._inflight: dict[int, tuple[Submission, float]] = {}
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._client: _Client | None = None
        self._thread: threading.Thread | None = None
        self._paused_until = 0.0
        self._last_activity = 0.0
        self._link_probe: float | None = None
        self._reader_done = False  # the link's reader ended: the writer must stop waiting
        self.sent = 0  # submit_sm answered OK, for the owner's rate figure

    # --- the owner's side ---------------------------------------------------------------

    def start(self) -> SmppSession:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> list[Submission]:
        """Unbind and close; returns the submissions not answered (to be sent again)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            left = [s for s, _ in self._inflight.values()] + list(self._queue)
            self._inflight.clear()
            self._queue.clear()
        return left

    def submit(self, subs: list[Submission]) -> None:
        with self._cond:
            self._queue.extend(subs)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def backlog(self) -> int:
        return len(self._queue) + len(self._inflight)

    # --- connection life ----------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._connect()
                delay = 0.5
                self.events.state("bound", None)
                self._serve()
            except Exception as exc:  # any failure: report, requeue, reconnect
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if not self._stop.is_set():
                    log.warning("%s: %s", self.name, error)
                    self.events.state("down", error)
            finally:
                self._close()
            if self._stop.wait(delay):
                break
            delay = min(self.config.reconnect_max, delay * 2) * random.uniform(0.8, 1.0)
        self.events.state("stopped", None)

    def _connect(self) -> None:
        cfg = self.config
        client = _Client(
            cfg.host, cfg.port, timeout=cfg.response_timeout, allow_unknown_opt_params=True
        )
        self.events.state("connecting", None)
        client.connect()
        bind = {
            "transceiver": client.bind_transceiver,
            "transmitter": client.bind_transmitter,
            "receiver": client.bind_receiver,
        }[self.role]
        try:
            bind(system_id=cfg.system_id, password=cfg.password, system_type=cfg.system_type)
        except smpplib.exceptions.PDUError as exc:
            client.disconnect()
            raise BindRefused(str(exc)) from exc
        client._socket.settimeout(None)  # the reader blocks; closing the socket wakes it
        self._client = client
        self._last_activity = time.monotonic()
        self._link_probe = None

    def _close(self) -> None:
        client, self._client = self._client, None
        with self._cond:
            # Unanswered submissions go back to the front: at least once, never lost. A lost
            # link is not the message's fault, so it does not count against its tries.
            self._queue.extendleft(reversed([s for s, _ in self._inflight.values()]))
            self._inflight.clear()
        if client is not None:
            with contextlib.suppress(OSError):
                client._socket.close()
            client._socket = None
            client.state = c.SMPP_CLIENT_STATE_CLOSED

    def _serve(self) -> None:
        assert self._client is not None
        self._reader_done = False
        reader = threading.Thread(
            target=self._read_loop, args=(self._client,), name=f"{self.name}-reader", daemon=True
        )
        reader.start()
        try:
            while not self._stop.is_set() and reader.is_alive():
                self._tick()
                sub = self._next_submission()
                if sub is not None:
                    self._send_submit(sub)
        finally:
            if self._stop.is_set():
                self._unbind()
            client = self._client
            if client is not None and client._socket is not None:
                with contextlib.suppress(OSError):
                    client._socket.shutdown(socket.SHUT_RDWR)
            reader.join(5)

    def _unbind(self) -> None:
        """On shutdown: wait briefly for answers in flight, then unbind."""
        deadline = time.monotonic() + min(5.0, self.config.response_timeout)
        with self._cond:
            while self._inflight and time.monotonic() < deadline:
                self._cond.wait(0.05)
        try:
            self._send(smpplib.smpp.make_pdu("unbind", client=self._client))
            time.sleep(0.05)
        except Exception:
            pass

    # --- writing ------------------------------------------------------------------------

    def _next_submission(self) -> Submission | None:
        with self._cond:
            # A dead link ends the wait at once: reconnect now, not at the next timeout.
            while not self._stop.is_set() and not self._reader_done:
                now = time.monotonic()
                can_send = (
                    self.role != "receiver"
                    and self._queue
                    and len(self._inflight) < self.config.window
                    and now >= self._paused_until
                )
                if can_send:
                    return self._queue.popleft()
                self._cond.wait(self._wait_time(now))
                if self._due_timer():
                    return None
        return None

    def _wait_time(self, now: float) -> float:
        waits = [0.25, max(0.0, self.config.enquire_link_interval - (now - self._last_activity))]
        if self._paused_until > now:
            waits.append(self._paused_until - now)
        return max(0.001, min(waits))

    def _due_timer(self) -> bool:
        now = time.monotonic()
        oldest = min((t for _, t in self._inflight.values()), default=None)
        return bool(
            (oldest is not None and now - oldest > self.config.response_timeout)
            or now - self._last_activity >= self.config.enquire_link_interval
        )

    def _tick(self) -> None:
        """Timeouts and keep-alive."""
        now = time.monotonic()
        expired: list[Submission] = []
        with self._cond:
            for seq, (sub, sent_at) in list(self._inflight.items()):
                if now - sent_at > self.config.response_timeout:
                    del self._inflight[seq]
                    expired.append(sub)
            self._cond.notify_all()
        for sub in expired:
            self._retry(sub, "no submit_sm_resp in time")
        if expired and self._link_probe is None:
            # Silence may mean a dead link: probe it now rather than at the next keep-alive.
            self._link_probe = now
            self._send(smpplib.smpp.make_pdu("enquire_link", client=self._client))
        if self._link_probe is not None and now - self._link_probe > self.config.response_timeout:
            raise ConnectionLost("no enquire_link_resp in time")
        if (
            self._link_probe is None
            and now - self._last_activity >= self.config.enquire_link_interval
        ):
            self._link_probe = now
            self._send(smpplib.smpp.make_pdu("enquire_link", client=self._client))

    def _send_submit(self, sub: Submission) -> None:
        cfg = self.config
        if cfg.throughput > 0:
            gap = 1.0 / cfg.throughput
            now = time.monotonic()
            wait = self._paused_until - now if self._paused_until > now else 0.0
            self._paused_until = max(now, self._paused_until) + gap
            if wait > 0:
                time.sleep(wait)
        part = sub.part
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=self._client,
            source_addr_ton=cfg.source_ton,
            source_addr_npi=cfg.source_npi,
            source_addr=sub.source,
            dest_addr_ton=cfg.dest_ton,
            dest_addr_npi=cfg.dest_npi,
            destination_addr=sub.destination,
            esm_class=part.esm_class,
            data_coding=part.data_coding,
            short_message=part.short_message,
            registered_delivery=1,
            **part.tlvs,
        )
        with self._cond:
            self._inflight[pdu.sequence] = (sub, time.monotonic())
        try:
            self._send(pdu)
        except Exception:
            raise ConnectionLost("send failed") from None

    def _send(self, pdu: Any, on: _Client | None = None) -> None:
        """Send on the current connection; with ``on``, only if that one still is."""
        client = self._client
        if client is None or (on is not None and client is not on):
            raise ConnectionLost("not connected")
        with self._send_lock:
            client.send_pdu(pdu)

    def _retry(self, sub: Submission, reason: str, *, pause: bool = False) -> None:
        sub.tries += 1
        if sub.tries >= self.config.max_tries:
            self.events.refused(
                sub, c.SMPP_ESME_RSYSERR, f"gave up after {sub.tries} tries: {reason}"
            )
            return
        with self._cond:
            self._queue.appendleft(sub)
            if pause:
                self._paused_until = max(
                    self._paused_until, time.monotonic() + self.config.throttle_pause
                )
            self._cond.notify_all()

    # --- reading ------------------------------------------------------------------------

    def _read_loop(self, client: _Client) -> None:
        try:
            while not self._stop.is_set():
                raw = client.read_raw()
                self._last_activity = time.monotonic()
                self._handle(client, raw)
        except Exception as exc:
            if not self._stop.is_set():
                log.info("%s: reader ends: %s", self.name, exc)
        finally:
            with self._cond:
                self._reader_done = True
                self._cond.notify_all()

    def _handle(self, client: _Client, raw: bytes) -> None:
        _command_id, status, seq = struct.unpack(">LLL", raw[4:16])
        try:
            pdu = smpplib.smpp.parse_pdu(raw, client=client, allow_unknown_opt_params=True)
        except Exception:
            pdu = None
        if pdu is None:
            nack = smpplib.smpp.make_pdu(
                "generic_nack", client=client, status=c.SMPP_ESME_RINVCMDID
            )
            nack.sequence = seq
            self._send(nack)
            return
        command = pdu.command
        if command == "submit_sm_resp":
            self._on_submit_resp(seq, status, pdu)
        elif command == "generic_nack":
            self._on_nack(seq, status)
        elif command == "deliver_sm":
            self._on_deliver(client, pdu)
        elif command == "enquire_link":
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
            resp.sequence = seq
            self._send(resp)
        elif command == "enquire_link_resp":
            self._link_probe = None
        elif command == "unbind":
            resp = smpplib.smpp.make_pdu("unbind_resp", client=client)
            resp.sequence = seq
            self._send(resp)
            raise ConnectionLost("the SMSC unbound")

    def _take(self, seq: int) -> Submission | None:
        with self._cond:
            entry = self._inflight.pop(seq, None)
            self._cond.notify_all()
        return entry[0] if entry else None

    def _on_submit_resp(self, seq: int, status: int, pdu: Any) -> None:
        sub = self._take(seq)
        if sub is None:
            return  # answered after its timeout: it was sent again
        if status == c.SMPP_ESME_ROK:
            message_id = pdu.message_id
            if isinstance(message_id, bytes):
                message_id = message_id.decode("ascii", errors="replace")
            self.sent += 1
            self.events.submitted(sub, str(message_id or "").strip("\x00"))
        elif status in THROTTLED:
            self._retry(sub, f"throttled (0x{status:08x})", pause=True)
        elif status in TRANSIENT:
            self._retry(sub, f"transient error 0x{status:08x}")
        else:
            reason = c.DESCRIPTIONS.get(status, "unknown error")
            self.events.refused(sub, status, f"0x{status:08x} {reason}")

    def _on_nack(self, seq: int, status: int) -> None:
        sub = self._take(seq)
        if sub is not None:
            self._retry(sub, f"generic_nack 0x{status:08x}")

    def _on_deliver(self, client: _Client, pdu: Any) -> None:
        def ack() -> None:
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
            resp.sequence = pdu.sequence
            try:
                # Only where the deliver_sm came from: its sequence number means nothing
                # on a newer connection, where it could acknowledge another PDU.
                self._send(resp, on=client)
            except Exception:
                log.info("%s: deliver_sm_resp not sent; the SMSC will redeliver", self.name)

        def text(value: Any) -> str | None:
            if value is None:
                return None
            return (
                value.decode("ascii", errors="replace") if isinstance(value, bytes) else str(value)
            )

        message = pdu.short_message or b""
        self.events.received(
            Inbound(
                source=text(pdu.source_addr) or "",
                destination=text(pdu.destination_addr) or "",
                esm_class=int(pdu.esm_class or 0),
                data_coding=int(pdu.data_coding or 0),
                short_message=message if isinstance(message, bytes) else str(message).encode(),
                receipted_message_id=(text(getattr(pdu, "receipted_message_id", None)) or "").strip(
                    "\x00"
                )
                or None,
                message_state=getattr(pdu, "message_state", None),
            ),
            ack,
        )


class BindRefused(Exception):
    """The SMSC refused the bind (credentials, system type): the connection is down."""


class ConnectionLost(Exception):
    pass
