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
        # Buffered: one recv takes every PDU the SMSC wrote (a window of answers and
        # receipts), where smpplib reads each PDU in two recv calls, each a hand-off of
        # the GIL in a busy process.
        buf: bytearray = self.__dict__.setdefault("_rbuf", bytearray())
        while len(buf) < 4:
            self._fill(buf)
        (length,) = struct.unpack_from(">L", buf)
        if not 16 <= length <= MAX_PDU:
            raise smpplib.exceptions.ConnectionError(f"unframable PDU length {length}")
        while len(buf) < length:
            self._fill(buf)
        raw = bytes(buf[:length])
        del buf[:length]
        return raw

    def _fill(self, buf: bytearray) -> None:
        try:
            part = self._socket.recv(65536)
        except TimeoutError:
            raise
        except OSError as exc:
            raise smpplib.exceptions.ConnectionError() from exc
        if not part:
            raise smpplib.exceptions.ConnectionError()
        buf += part


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
        # Small answers (deliver_sm_resp) waiting for the writer, which sends them with
        # whatever else it writes in one call: (the connection they belong to, bytes).
        self._outbox: list[tuple[_Client, bytes]] = []
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
            self._outbox.clear()  # acks of this link: the SMSC delivers those again
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
                subs = self._next_submissions()
                if subs:
                    self._send_submits(subs)
                self._flush_outbox()
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
        with contextlib.suppress(Exception):
            self._flush_outbox()
        with self._cond:
            while self._inflight and time.monotonic() < deadline:
                self._cond.wait(0.05)
        try:
            self._send(smpplib.smpp.make_pdu("unbind", client=self._client))
            time.sleep(0.05)
        except Exception:
            pass

    # --- writing ------------------------------------------------------------------------

    def _next_submissions(self) -> list[Submission]:
        """What may go now: as many as the window has room for (one at a time under a
        throughput limit); empty when a timer is due or answers wait to be written."""
        with self._cond:
            # A dead link ends the wait at once: reconnect now, not at the next timeout.
            while not self._stop.is_set() and not self._reader_done:
                now = time.monotonic()
                room = self.config.window - len(self._inflight)
                can_send = (
                    self.role != "receiver"
                    and self._queue
                    and room > 0
                    and now >= self._paused_until
                )
                if can_send:
                    if self.config.throughput > 0:
                        room = 1
                    return [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
                if self._outbox:
                    return []
                self._cond.wait(self._wait_time(now))
                if self._due_timer():
                    return []
        return []

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

    def _send_submits(self, subs: list[Submission]) -> None:
        """Build the submit_sm PDUs and write them in one call."""
        cfg = self.config
        if cfg.throughput > 0:
            gap = 1.0 / cfg.throughput
            now = time.monotonic()
            wait = self._paused_until - now if self._paused_until > now else 0.0
            self._paused_until = max(now, self._paused_until) + gap * len(subs)
            if wait > 0:
                time.sleep(wait)
        chunks: list[bytes] = []
        entries: list[tuple[int, Submission]] = []
        for sub in subs:
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
            chunks.append(pdu.generate())
            entries.append((pdu.sequence, sub))
        sent_at = time.monotonic()
        with self._cond:
            for seq, sub in entries:
                self._inflight[seq] = (sub, sent_at)
        try:
            self._write(b"".join(chunks))
        except Exception:
            raise ConnectionLost("send failed") from None

    def _flush_outbox(self) -> None:
        """Write the answers queued for the current connection (acks after a commit)."""
        with self._cond:
            if not self._outbox:
                return
            out, self._outbox = self._outbox, []
        client = self._client
        data = b"".join(raw for on, raw in out if on is client)
        if data:
            try:
                self._write(data)
            except Exception:
                log.info("%s: deliver_sm_resp not sent; the SMSC will redeliver", self.name)

    def _write(self, data: bytes) -> None:
        client = self._client
        if client is None or client._socket is None:
            raise ConnectionLost("not connected")
        with self._send_lock:
            client._socket.sendall(data)

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
            raw = resp.generate()
            with self._cond:
                # Only where the deliver_sm came from: its sequence number means nothing
                # on a newer connection, where it could acknowledge another PDU.
                if self._client is not client:
                    log.info("%s: deliver_sm_resp not sent; the SMSC will redeliver", self.name)
                    return
                self._outbox.append((client, raw))  # the writer sends a batch at once
                self._cond.notify_all()

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
