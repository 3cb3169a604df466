"""A minimal, fast HTTP/1.1 receiver (asyncio, keep-alive) run in its own process, for
benchmarks: the stdlib server cannot take thousands of requests per second.

It answers every POST with the status chosen by ``fail_first`` (the first k requests of
each ``webhook-id`` get 500) and records arrival latency from the body's ``t`` field.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any


def _serve(conn: Connection, port_out: Any, fail_first: int) -> None:
    latencies: list[float] = []
    arrivals: dict[str, list[float]] = {}
    seen: Counter[str] = Counter()
    ok = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal ok
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                now = time.time()
                msg_id = headers.get("webhook-id", "")
                seen[msg_id] += 1
                arrivals.setdefault(msg_id, []).append(now)
                if seen[msg_id] <= fail_first:
                    status = b"500 Internal Server Error"
                else:
                    status = b"200 OK"
                    ok += 1
                    t = json.loads(body).get("t")
                    if isinstance(t, int | float):
                        latencies.append(now - t)
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.value = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        conn.recv()
        server.close()
        conn.send({"ok": ok, "latencies": latencies, "arrivals": arrivals})

    asyncio.run(main())


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
