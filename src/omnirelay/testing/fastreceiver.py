"""A minimal, fast HTTP/1.1 receiver (uvloop, httptools, keep-alive) run in its own
process, for benchmarks: the stdlib server cannot take thousands of requests per second,
and the receiver must never be what a benchmark measures (ADR 42: ~20-30 us a request).

It answers every POST with the status chosen by ``fail_first`` (the first k requests of
each ``webhook-id`` get 500) and records arrival latency from the body's ``t`` field.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any, cast

import httptools
import uvloop

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nok"


class _State:
    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.latencies: list[float] = []
        self.arrivals: dict[str, list[float]] = {}
        self.seen: Counter[str] = Counter()
        self.ok = 0


class _Server(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.msg_id = ""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.msg_id = ""
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self.msg_id = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        state, now = self.state, time.time()
        state.seen[self.msg_id] += 1
        state.arrivals.setdefault(self.msg_id, []).append(now)
        assert self.transport is not None
        if state.seen[self.msg_id] <= state.fail_first:
            self.transport.write(FAIL)
            return
        state.ok += 1
        self.transport.write(OK)
        t = json.loads(b"".join(self.body)).get("t")
        if isinstance(t, int | float):
            state.latencies.append(now - t)


def _serve(conn: Connection, port_out: Any, fail_first: int) -> None:
    state = _State(fail_first)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Server(state), "127.0.0.1", 0, backlog=1024)
        port_out.value = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        os.set_blocking(conn.fileno(), True)  # uvloop made it non-blocking: a big send
        conn.recv()
        server.close()
        conn.send({"ok": state.ok, "latencies": state.latencies, "arrivals": state.arrivals})

    uvloop.run(main())


class FastReceiver:
    def __init__(self, fail_first: int = 0) -> None:
        ctx = mp.get_context("spawn")
        self._port = ctx.Value("i", 0)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._port, fail_first), daemon=True)

    def start(self) -> FastReceiver:
        self._proc.start()
        deadline = time.monotonic() + 10
        while self._port.value == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("receiver did not start")
            time.sleep(0.01)
        return self

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._port.value}{path}"

    def finish(self) -> dict[str, Any]:
        """Stop the receiver and return what it saw."""
        self._conn.send("stop")
        result: dict[str, Any] = self._conn.recv()
        self._proc.join(5)
        return result
