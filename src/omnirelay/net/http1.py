"""A small HTTP/1.1 client for many small POSTs to few receivers (the webhook deliverer,
ADR 42): keep-alive connections pooled per origin, one request at a time on each,
responses parsed by httptools (llhttp, the parser of uvicorn and Node.js).

Every connection goes to an address the SSRF guard checked when it was opened
(``ssrf.resolve_async``: every address a name resolves to must pass; the first is
connected to, so a second DNS answer cannot move the peer), with the URL's host in the
``Host`` header and as the TLS server name. Redirects are never followed: a 3xx is an
answer like any other. The body of an answer is read and dropped (up to
``MAX_RESPONSE_BYTES``; a longer one closes the connection).

Why not aiohttp: it cost 120-190 us of CPU per request here, this 20-25 (ADR 42).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from omnirelay.net.ssrf import IPNetwork, precheck, resolve_async

MAX_RESPONSE_BYTES = 64 * 1024
IDLE_SECONDS = 15.0  # an idle connection older than this is closed, not reused
# Deadlines are checked this often while requests are in flight (one timer for all, not
# one per request: a timer each was ~5 % of the deliverer's CPU): a request times out
# between its timeout and this much later.
TICK = 0.25
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"


class ProtocolError(ConnectionError):
    """The peer's answer is not HTTP/1.x, or the connection ended before an answer."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL parsed once: its origin (the pool key), what goes to the request line."""

    url: str
    origin: tuple[str, str, int]  # scheme, normalised host, port
    head: bytes  # "POST <target> HTTP/1.1\r\nHost: ...\r\n"


def destination(url: str, allowed: Sequence[IPNetwork] = ()) -> Destination:
    """Parse and precheck ``url`` (shape, literal addresses; names are checked when a
    connection is opened). Raises ``UnsafeURL``."""
    scheme, host, port = precheck(url, allowed)
    parts = urlsplit(url.strip())
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_PATH + "?")
    name = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    authority = name if port == default else f"{name}:{port}"
    head = f"POST {target} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
    return Destination(url, (scheme, host, port), head)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the pool hands it to one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, str | None]] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.deadline = 0.0  # loop time the answer must have come by
        self._got_bytes = False
        self._headers_done = False
        self._retry_after: str | None = None
        self._body = 0

    # --- the pool's side ---------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[tuple[int, str | None]]:
        assert self.transport is not None
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self._got_bytes = self._headers_done = False
        self._retry_after = None
        self._body = 0
        if self.transport.is_closing():  # the peer's close is on its way to us
            self._fail(ProtocolError("connection closed before an answer"))
        else:  # (if not sent, the pool sends it on a new connection)
            self.transport.write(data)
        return waiter

    @property
    def reusable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    @property
    def answered_nothing(self) -> bool:
        """Not a byte of an answer arrived: a request on a reused connection the peer
        had closed meanwhile can go again on a new one."""
        return not self._got_bytes

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def expire(self) -> None:
        """The request's time is up: no answer, and the connection cannot be reused."""
        self._fail(TimeoutError())
        self.close()

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._headers_done:  # an answer delimited by the end of the connection
            self._resolve()
        else:
            self._fail(ProtocolError("connection closed before an answer"))

    # --- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 11 and name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > MAX_RESPONSE_BYTES:  # enough: the status is what counts
            self._resolve()
            self.close()

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._headers_done = False
            return
        if not self.parser.should_keep_alive():
            self.closed = True
        self._resolve()
        if self.closed:
            self.close()

    def _resolve(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self._retry_after))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class Pool:
    """Keep-alive connections per origin, opened through the SSRF guard; one per request
    in flight (the caller bounds how many are)."""

    def __init__(self, allowed: Sequence[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed)
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._busy: set[_Connection] = set()  # a request in flight
        self._ticking = False
        self._ssl: ssl.SSLContext | None = None
        self._swept = time.monotonic()

    async def post(
        self, dest: Destination, headers: bytes, body: bytes, timeout: float
    ) -> tuple[int, str | None]:
        """POST ``body`` with ``headers`` (complete ``Name: value\\r\\n`` lines, our own
        values) to ``dest``: (status, Retry-After). Transport failures raise OSError
        (``ProtocolError`` is one), ``TimeoutError`` past ``timeout`` seconds."""
        data = b"".join((dest.head, headers, b"Content-Length: %d\r\n\r\n" % len(body), body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = self._reuse(dest.origin)
        if conn is not None:
            try:
                return self._done(dest, conn, await self._send(loop, conn, data, deadline))
            except BaseException as exc:
                self._drop(conn)
                if not (isinstance(exc, ProtocolError) and conn.answered_nothing):
                    raise
                # The peer closed the idle connection as we sent: once more, anew.
        conn = await asyncio.wait_for(self._connect(dest), max(0.0, deadline - loop.time()))
        try:
            return self._done(dest, conn, await self._send(loop, conn, data, deadline))
        except BaseException:
            self._drop(conn)
            raise

    async def _send(
        self, loop: asyncio.AbstractEventLoop, conn: _Connection, data: bytes, deadline: float
    ) -> tuple[int, str | None]:
        conn.deadline = deadline
        self._busy.add(conn)
        if not self._ticking:
            self._ticking = True
            loop.call_later(TICK, self._tick, loop)
        try:
            return await conn.send(data)
        finally:
            self._busy.discard(conn)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Expire the requests past their deadline; tick again while any are in flight
        (an idle pool has no timer)."""
        now = loop.time()
        for conn in [c for c in self._busy if c.deadline <= now]:
            self._busy.discard(conn)
            conn.expire()
        if self._busy:
            loop.call_later(TICK, self._tick, loop)
        else:
            self._ticking = False

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    def _done(
        self, dest: Destination, conn: _Connection, answer: tuple[int, str | None]
    ) -> tuple[int, str | None]:
        if conn.closed:
            self._open.discard(conn)
        else:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(dest.origin, deque()).append(conn)
        return answer

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        now = time.monotonic()
        if now - self._swept > IDLE_SECONDS:
            self._sweep(now)
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recent: the least likely to have been closed
            if conn.reusable and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
            self._open.discard(conn)
        return None

    def _sweep(self, now: float) -> None:
        self._swept = now
        for origin, idle in list(self._idle.items()):
            keep = deque(c for c in idle if not c.closed and now - c.idle_since < IDLE_SECONDS)
            for conn in idle:
                if conn not in keep:
                    conn.close()
                    self._open.discard(conn)
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]

    async def _connect(self, dest: Destination) -> _Connection:
        target = await resolve_async(dest.url, self.allowed)  # the guard, every time
        scheme, host, port = dest.origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection,
            host=str(target.address),
            port=port,
            ssl=context,
            server_hostname=host if context is not None else None,
        )
        self._open.add(conn)
        return conn

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
