"""A small scriptable SMSC for fault tests: raw SMPP 3.4 over TCP on loopback, one thread
per connection. A script decides what each submit_sm gets: an id, an error status, no
answer, a late answer, a generic_nack, garbage, an unbind, or a dropped connection."""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

BIND_TRX, BIND_TX, BIND_RX = 0x00000009, 0x00000002, 0x00000001
SUBMIT, DELIVER, UNBIND, ENQUIRE, NACK = 0x00000004, 0x00000005, 0x00000006, 0x00000015, 0x80000000
RESP = 0x80000000


@dataclass
class Action:
    kind: str = "ok"  # ok | status | silent | late | nack | garbage | unbind | drop | receipt_first
    status: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class Submit:
    seq: int
    destination: str
    short_message: bytes
    message_id: str


def _cstr(body: bytes, at: int) -> tuple[str, int]:
    end = body.index(b"\x00", at)
    return body[at:end].decode("latin-1"), end + 1


def _pdu(command: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return struct.pack(">LLLL", 16 + len(body), command, status, seq) + body


class FakeSmsc:
    def __init__(self, *, bind_status: int = 0) -> None:
        self.bind_status = bind_status
        self.script: Callable[[Submit, int], Action] = lambda sub, n: Action()
        self.submits: list[Submit] = []
        self.binds = 0
        self.bind_kinds: list[int] = []
        self.unbinds = 0
        self.outstanding = 0  # submit_sm not answered yet
        self.max_outstanding = 0
        self.receipts = True
        self._ids = itertools.count(1)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Responses the ESME sent (deliver_sm_resp, ...): (connection number, command, seq).
        self.responses: list[tuple[int, int, int]] = []

    def start(self) -> FakeSmsc:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.close()

    def drop(self) -> None:
        """Close every open connection, as a network fault would: the ESME reconnects."""
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def __enter__(self) -> FakeSmsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            number = len(self._conns)  # 1 for the first connection
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        with self._lock:
            conn.sendall(data)

    def _serve(self, conn: socket.socket, number: int) -> None:
        seq_out = itertools.count(1)
        try:
            while not self._stop.is_set():
                head = self._read(conn, 16)
                length, command, _status, seq = struct.unpack(">LLLL", head)
                body = self._read(conn, length - 16)
                if command in (BIND_TRX, BIND_TX, BIND_RX):
                    self.binds += 1
                    self.bind_kinds.append(command)
                    self._send(conn, _pdu(command | RESP, self.bind_status, seq, b"fake\x00"))
                    if self.bind_status:
                        conn.close()
                        return
                elif command == ENQUIRE:
                    self._send(conn, _pdu(ENQUIRE | RESP, 0, seq))
                elif command == UNBIND:
                    self.unbinds += 1
                    self._send(conn, _pdu(UNBIND | RESP, 0, seq))
                    conn.close()
                    return
                elif command == SUBMIT:
                    self._submit(conn, seq, body, seq_out)
                elif command & RESP:
                    self.responses.append((number, command, seq))  # nothing to answer
        except (OSError, struct.error):
            return

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _submit(
        self, conn: socket.socket, seq: int, body: bytes, seq_out: itertools.count[int]
    ) -> None:
        _service, at = _cstr(body, 0)
        at += 2
        _source, at = _cstr(body, at)
        at += 2
        destination, at = _cstr(body, at)
        at += 3  # esm_class, protocol_id, priority_flag
        _, at = _cstr(body, at)
        _, at = _cstr(body, at)
        at += 4  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        sm_length = body[at]
        message = body[at + 1 : at + 1 + sm_length]
        message_id = f"{next(self._ids):x}"
        sub = Submit(seq, destination, message, message_id)
        self.submits.append(sub)
        action = self.script(sub, len(self.submits))
        with self._lock:
            self.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self.outstanding)
        if action.kind != "late":
            self._answered()
        resp = _pdu(SUBMIT | RESP, 0, seq, message_id.encode() + b"\x00")
        if action.kind == "ok":
            self._send(conn, resp)
        elif action.kind == "status":
            self._send(conn, _pdu(SUBMIT | RESP, action.status, seq, b"\x00"))
            return
        elif action.kind == "silent":
            return
        elif action.kind == "late":

            def later() -> None:
                self._answered()
                self._quiet_send(conn, resp)

            threading.Timer(action.delay, later).start()
        elif action.kind == "nack":
            self._send(conn, _pdu(NACK, action.status or 0x00000008, seq))
            return
        elif action.kind == "garbage":
            self._send(conn, _pdu(0x00000999, 0, 777, b"\xff\xfe"))  # an unknown command
            self._send(conn, resp)
        elif action.kind == "unbind":
            self._send(conn, _pdu(UNBIND, 0, next(seq_out)))
            return
        elif action.kind == "drop":
            conn.close()
            return
        elif action.kind == "receipt_first":
            self._receipt(conn, sub, seq_out)
            self._send(conn, resp)
            return
        if self.receipts:
            time.sleep(0.01)
            self._receipt(conn, sub, seq_out)

    def _answered(self) -> None:
        with self._lock:
            self.outstanding -= 1

    def _quiet_send(self, conn: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._send(conn, data)

    def _receipt(self, conn: socket.socket, sub: Submit, seq_out: itertools.count[int]) -> None:
        text = (
            f"id:{sub.message_id} sub:001 dlvrd:001 submit date:2611230000 "
            "done date:2611230000 stat:DELIVRD err:000 text:"
        )
        body = (
            b"\x00"
            + bytes([1, 1])
            + sub.destination.encode()
            + b"\x00"
            + bytes([5, 0])
            + b"ACME\x00"
            + bytes([0x04, 0, 0])
            + b"\x00\x00"
            + bytes([0, 0, 0, 0])
            + bytes([len(text)])
            + text.encode()
        )
        self._quiet_send(conn, _pdu(DELIVER, 0, next(seq_out), body))
