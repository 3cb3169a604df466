"""Load for the side-by-side benchmark (bench/kannel.py): the same two generators drive
every system under test.

- ``wrk``: the closed loop (wrk -t T -c C -d S --latency, requests made by a Lua script,
  each with a distinct text so that duplicates can be seen at the SMSC); its figures come
  from the script's ``done`` as one JSON line.
- ``open_loop``: a fixed offered rate (wrk2 is not in Debian): requests are scheduled at
  ``start + i / rate`` over a pool of keep-alive connections, and each latency is counted
  from the scheduled time, not from when a connection was free, so a stalled server is
  charged for the requests it held up (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,' ..
    '"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

_THREADS = """
local created = 0
function setup(thread)
  created = created + 1
  thread:set("tid", created)
end
local n = 0
"""


def _lua(text: str) -> str:
    return "[==[" + text + "]==]"


def lua_get(path: str, param: str, prefix: str) -> str:
    """GET ``path`` with ``&param=<prefix><thread>-<n>`` added: a distinct text each."""
    return (
        _THREADS
        + f"""
function request()
  n = n + 1
  return wrk.format("GET", {_lua(path)} .. "&{param}={prefix}" .. tid .. "-" .. n)
end
"""
        + _DONE
    )


def lua_post_json(path: str, headers: dict[str, str], before: str, after: str) -> str:
    """POST ``path`` with the JSON ``before + "<thread>-<n>" + after`` (a distinct text)."""
    table = ", ".join(f"[ {_lua(k)} ] = {_lua(v)}" for k, v in headers.items())
    return (
        _THREADS
        + f"""
local headers = {{{table}}}
function request()
  n = n + 1
  local body = {_lua(before)} .. tid .. "-" .. n .. {_lua(after)}
  return wrk.format("POST", {_lua(path)}, headers, body)
end
"""
        + _DONE
    )


@dataclass(frozen=True)
class WrkResult:
    requests: int  # answers received
    failed: int  # answers >= 400, connect/read/write errors, timeouts
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int

    @property
    def accepted(self) -> int:
        return self.requests - self.status_errors

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def wrk(
    url: str, script: str, *, threads: int, connections: int, seconds: float, timeout: float
) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(script)
        f.flush()
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout))}s",
            "--latency",
            "-s",
            f.name,
            url,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout + 30)
    found = re.search(r"^WRK_JSON (.*)$", done.stdout, re.M)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    d = json.loads(found.group(1))
    failed = d["status_errors"] + d["connect"] + d["read"] + d["write"] + d["timeout"]
    return WrkResult(
        requests=d["requests"],
        failed=failed,
        seconds=d["duration_us"] / 1e6,
        p50_ms=d["p50_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        status_errors=d["status_errors"],
    )


@dataclass
class OpenLoopResult:
    offered: float  # requests per second scheduled
    scheduled: int
    ok: int = 0  # 2xx answers
    failed: int = 0  # other answers, lost connections, no answer within the grace time
    latencies: list[float] = field(default_factory=list)  # seconds, of the 2xx answers

    @property
    def achieved(self) -> float:
        return self.ok / (self.scheduled / self.offered) if self.scheduled else 0.0


_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.I)


def _response_end(buf: bytearray) -> int:
    """The length of the first complete response in ``buf``, or 0."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return 0
    head = bytes(buf[: head_end + 2])
    at = head_end + 4
    found = _LENGTH.search(head)
    if found:
        end = at + int(found.group(1))
        return end if len(buf) >= end else 0
    if _CHUNKED.search(head):
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                return 0
            size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
            at = line_end + 2 + size + 2
            if len(buf) < at:
                return 0
            if size == 0:
                return at
    return at  # no body


class _Conn(asyncio.Protocol):
    def __init__(
        self, answered: Callable[[_Conn, int, float], None], lost: Callable[[], None]
    ) -> None:
        self.answered = answered
        self.lost = lost
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.scheduled: float | None = None  # of the request awaiting its answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, scheduled: float) -> None:
        assert self.transport is not None
        self.scheduled = scheduled
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = _response_end(self.buf)
        if end and self.scheduled is not None:
            status = int(self.buf[9:12])
            del self.buf[:end]
            scheduled, self.scheduled = self.scheduled, None
            self.answered(self, status, scheduled)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.lost()  # its request, if any, counts as unanswered


async def open_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    connections: int,
    grace: float = 10.0,
) -> OpenLoopResult:
    """``make(i)`` is the i-th request (HTTP/1.1, keep-alive). Requests that find every
    connection busy wait in a queue, their clock running."""
    loop = asyncio.get_running_loop()
    total = max(1, int(rate * seconds))
    result = OpenLoopResult(offered=rate, scheduled=total)
    waiting: deque[tuple[int, float]] = deque()
    idle: list[_Conn] = []
    answered_all = loop.create_future()
    answers = 0

    def dispatch() -> None:
        while waiting and idle:
            conn = idle.pop()
            if conn.transport is None:
                continue
            i, scheduled = waiting.popleft()
            conn.send(make(i), scheduled)

    def answered(conn: _Conn, status: int, scheduled: float) -> None:
        nonlocal answers
        answers += 1
        if 200 <= status < 300:
            result.ok += 1
            result.latencies.append(time.perf_counter() - scheduled)
        else:
            result.failed += 1
        idle.append(conn)
        dispatch()
        if answers == total and not answered_all.done():
            answered_all.set_result(None)

    conns: list[_Conn] = []
    closing = False

    async def connect() -> None:
        _, proto = await loop.create_connection(lambda: _Conn(answered, lost), host, port)
        conns.append(proto)
        idle.append(proto)
        dispatch()

    def lost() -> None:
        # The server closed a connection (or it broke): another takes its place.
        if not closing:
            replacing.add(asyncio.ensure_future(connect()))

    replacing: set[asyncio.Future[None]] = set()
    for _ in range(connections):
        await connect()
    # perf_counter, not loop.time(): uvloop's clock has millisecond steps.
    start = time.perf_counter() + 0.01
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        waiting.append((i, start + i / rate))
        dispatch()
    with_grace = asyncio.ensure_future(asyncio.sleep(grace))
    await asyncio.wait([answered_all, with_grace], return_when=asyncio.FIRST_COMPLETED)
    with_grace.cancel()
    result.failed += total - answers  # unanswered (or never sent: every connection lost)
    closing = True
    for task in replacing:
        task.cancel()
    await asyncio.gather(*replacing, return_exceptions=True)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return result


def run_open_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    connections: int,
    grace: float = 10.0,
) -> OpenLoopResult:
    """:func:`open_loop` on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(
            open_loop(
                host,
                port,
                make,
                rate=rate,
                seconds=seconds,
                connections=connections,
                grace=grace,
            )
        )


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll until ``predicate()``; False when ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
