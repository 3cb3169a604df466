"""A fast SMSC for benchmarks: raw SMPP 3.4 over asyncio protocols (uvloop when installed),
so that the SMSC is never what limits an ESME under test (bench/kannel.py).

It accepts any bind (transceiver, transmitter, receiver), answers enquire_link, unbind and
every submit_sm (a decimal message id), and, when the submit_sm asks for one
(registered_delivery), sends the receipt as a deliver_sm right behind the answer: on the
same link for a transceiver, else on the newest receiver bind of the same system_id. It
counts submit_sm (with the monotonic time of the first and the last, comparable across the
machine's processes), distinct messages (duplicates show as ``submits - unique``), and the
receipts sent and acknowledged. Nothing is retried: it is a load sink, not a test double
(testing/smsc.py and testing/fakesmsc.py are those).

In a thread: ``with FastSmsc() as smsc: ... smsc.stats()``. In its own process (its CPU
is then its own and the caller's GIL cannot slow it): ``FastSmscProcess``, or
``python -m omnirelay.testing.fastsmsc [--port P] [--no-receipts]``, which prints
``{"port": P}`` and then answers the lines ``stats`` and ``reset`` on stdin with one JSON
line each; it exits at end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, cast

from omnirelay.testing.fakesmsc import BIND_RX, BIND_TRX, BIND_TX, DELIVER, ENQUIRE, SUBMIT, UNBIND

RESP = 0x80000000
GENERIC_NACK = 0x80000000
MAX_PDU = 65536
_HEAD = struct.Struct(">LLLL")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Stats:
    submits: int  # submit_sm answered
    unique: int  # distinct (source, destination, message) among them
    first: float | None  # time.monotonic() of the first submit_sm, None before any
    last: float | None
    binds: int
    receipts_sent: int
    receipts_acked: int  # deliver_sm_resp received
    receipts_unroutable: int  # asked for, but no receiver bound

    def rate(self) -> float:
        """submit_sm per second from the first to the last (0 with fewer than two)."""
        if self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return (self.submits - 1) / (self.last - self.first)


def pdu(command: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return _HEAD.pack(16 + len(body), command, status, seq) + body


def _date() -> bytes:
    return time.strftime("%y%m%d%H%M", time.gmtime()).encode()


class _State:
    """What every link of one server shares; touched only from the server's event loop."""

    def __init__(self, receipts: bool) -> None:
        self.receipts = receipts
        self.links: set[_Link] = set()
        self.receivers: dict[bytes, list[_Link]] = {}  # system_id -> receiver-capable links
        self.next_id = 1
        self.reset()

    def reset(self) -> None:
        self.submits = 0
        self.seen: set[bytes] = set()
        self.first: float | None = None
        self.last: float | None = None
        self.binds = 0
        self.receipts_sent = 0
        self.receipts_acked = 0
        self.receipts_unroutable = 0

    def stats(self) -> Stats:
        return Stats(
            self.submits,
            len(self.seen),
            self.first,
            self.last,
            self.binds,
            self.receipts_sent,
            self.receipts_acked,
            self.receipts_unroutable,
        )


class _Link(asyncio.Protocol):
    """One ESME connection. Every PDU complete in a read is handled, and the answers go
    out in one write: at thousands of submit_sm per second this is what keeps it cheap."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.system_id = b""
        self.receiver = False
        self.seq = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.state.links.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.links.discard(self)
        links = self.state.receivers.get(self.system_id)
        if links and self in links:
            links.remove(self)
        self.transport = None

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        pos, end, close = 0, len(buf), False
        while end - pos >= 16:
            length, command, _status, seq = _HEAD.unpack_from(buf, pos)
            if not 16 <= length <= MAX_PDU:
                close = True  # the stream cannot be framed any more
                break
            if end - pos < length:
                break
            if command == SUBMIT:
                self._submit(buf, pos + 16, pos + length, seq, out)
            elif command == DELIVER | RESP:
                self.state.receipts_acked += 1
            elif command == ENQUIRE:
                out.append(pdu(ENQUIRE | RESP, 0, seq))
            elif command in (BIND_TRX, BIND_TX, BIND_RX):
                self._bind(buf, pos + 16, command, seq, out)
            elif command == UNBIND:
                out.append(pdu(UNBIND | RESP, 0, seq))
                close = True
            elif not command & RESP:
                out.append(pdu(GENERIC_NACK, 0x00000003, seq))  # invalid command id
            pos += length
            if close:
                break
        del buf[:pos]
        if out:
            self.send(b"".join(out))
        if close and self.transport is not None:
            self.transport.close()

    def _bind(self, buf: bytearray, at: int, command: int, seq: int, out: list[bytes]) -> None:
        self.system_id = bytes(buf[at : buf.index(0, at)])
        self.state.binds += 1
        if command in (BIND_TRX, BIND_RX):
            self.receiver = True
            self.state.receivers.setdefault(self.system_id, []).append(self)
        out.append(pdu(command | RESP, 0, seq, b"fastsmsc\x00"))

    def _submit(self, buf: bytearray, at: int, end: int, seq: int, out: list[bytes]) -> None:
        state = self.state
        now = time.monotonic()
        if state.first is None:
            state.first = now
        state.last = now
        state.submits += 1
        at = buf.index(0, at) + 3  # service_type, source_addr_ton, source_addr_npi
        source_at = at
        at = buf.index(0, at) + 1
        source = bytes(buf[source_at : at - 1])
        at += 2  # dest_addr_ton, dest_addr_npi
        dest_at = at
        at = buf.index(0, at) + 1
        destination = bytes(buf[dest_at : at - 1])
        at = buf.index(0, at + 3) + 1  # esm_class, protocol_id, priority_flag; schedule
        at = buf.index(0, at) + 1  # validity_period
        registered = buf[at]
        state.seen.add(bytes(buf[source_at:end]))  # the message and its addresses
        message_id = str(state.next_id).encode()
        state.next_id += 1
        out.append(pdu(SUBMIT | RESP, 0, seq, message_id + b"\x00"))
        if state.receipts and registered & 0x03:
            self._receipt(message_id, source, destination, out)

    def _receipt(self, message_id: bytes, source: bytes, dest: bytes, out: list[bytes]) -> None:
        state = self.state
        target: _Link | None = self
        if not self.receiver:
            links = state.receivers.get(self.system_id)
            target = links[-1] if links else None
        if target is None:
            state.receipts_unroutable += 1
            return
        date = _date()
        text = b"id:%s sub:001 dlvrd:001 submit date:%s done date:%s stat:DELIVRD err:000 text:" % (
            message_id,
            date,
            date,
        )
        body = b"".join(
            (
                b"\x00\x01\x01",  # service_type, source ton/npi (the handset)
                dest,
                b"\x00\x05\x00",  # destination ton/npi (the sender)
                source,
                # end of address, esm_class (a receipt), protocol_id, priority_flag,
                # schedule and validity (empty), registered_delivery, replace_if_present,
                # data_coding, sm_default_msg_id
                b"\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00",
                bytes((len(text),)),
                text,
                struct.pack(">HH", 0x001E, len(message_id) + 1),  # receipted_message_id
                message_id + b"\x00",
                b"\x04\x27\x00\x01\x02",  # message_state DELIVERED
            )
        )
        target.seq = target.seq % 0x7FFFFFFF + 1
        data = pdu(DELIVER, 0, target.seq, body)
        state.receipts_sent += 1
        if target is self:
            out.append(data)
        else:
            target.send(data)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class FastSmsc:
    """The SMSC on its own event loop in a thread of this process."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, receipts: bool = True) -> None:
        self.host = host
        self.port = port
        self._state = _State(receipts)
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> FastSmsc:
        self._thread.start()
        self._server = self._call(self._serve)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    async def _serve(self) -> asyncio.Server:
        return await self._loop.create_server(
            lambda: _Link(self._state), self.host, self.port, reuse_address=True
        )

    def stats(self) -> Stats:
        result: Stats = self._call(self._state.stats)
        return result

    def reset(self) -> None:
        self._call(self._state.reset)

    def stop(self) -> None:
        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self._state.links):
                if link.transport is not None:
                    link.transport.close()
            await asyncio.sleep(0)  # let the transports finish closing

        try:
            self._call(shut)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> FastSmsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FastSmscProcess:
    """The SMSC in a child process (``python -m omnirelay.testing.fastsmsc``)."""

    def __init__(self, *, port: int = 0, receipts: bool = True) -> None:
        self.args = [sys.executable, "-m", "omnirelay.testing.fastsmsc", "--port", str(port)]
        if not receipts:
            self.args.append("--no-receipts")
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> FastSmscProcess:
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.port = int(json.loads(self._line())["port"])
        return self

    def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fast SMSC process ended")
        return line

    def _ask(self, command: str) -> dict[str, Any]:
        with self._lock:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            answer: dict[str, Any] = json.loads(self._line())
            return answer

    def stats(self) -> Stats:
        return Stats(**self._ask("stats"))

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # end of input: the process exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FastSmscProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast SMSC for benchmarks (SMPP 3.4).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-receipts", action="store_true")
    args = parser.parse_args()
    smsc = FastSmsc(host=args.host, port=args.port, receipts=not args.no_receipts).start()
    try:
        print(json.dumps({"port": smsc.port}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(asdict(smsc.stats())), flush=True)
            elif command == "reset":
                smsc.reset()
                print(json.dumps({"reset": True}), flush=True)
            elif command:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    finally:
        smsc.stop()


if __name__ == "__main__":
    main()
