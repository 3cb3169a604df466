"""The deliverer's HTTP/1.1 client (net/http1.py) against a raw loopback server that
answers with exact bytes: keep-alive reuse, answers that end the connection, a peer
that closed an idle connection, chunked and oversized bodies, the guard on connect.
No database: these run once, not per engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from omnirelay.net.http1 import MAX_RESPONSE_BYTES, Pool, ProtocolError, destination
from omnirelay.net.ssrf import UnsafeURL, parse_networks

LOOPBACK = parse_networks("127.0.0.0/8")
# The n-th request on a connection -> raw answer bytes, or None: close, no answer.
Answer = Callable[[int], bytes | None]


async def _serve(
    answer: Answer, close_after: int | None = None
) -> tuple[asyncio.Server, list[int]]:
    """A server reading each request head and body, answering ``answer(n)``; it closes a
    connection after ``close_after`` answers. Returns it and requests per connection."""
    per_conn: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_conn.append(0)
        me = len(per_conn) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                per_conn[me] += 1
                data = answer(per_conn[me])
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
                if close_after is not None and per_conn[me] >= close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, per_conn


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def _url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook?a=1"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given() -> None:
    async def test() -> None:
        seen: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                seen.append(head + await reader.readexactly(4))
                writer.write(OK)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        pool = Pool(LOOPBACK)
        dest = destination(_url(server), LOOPBACK)
        for _ in range(3):
            assert await pool.post(dest, b"X-A: 1\r\n", b"body", 5.0) == (200, None)
        pool.close()
        server.close()
        assert len(seen) == 3
        assert seen[0].startswith(b"POST /hook?a=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"X-A: 1\r\nContent-Length: 4\r\n\r\nbody" in seen[0]

    _run(test)


def test_connection_close_answers_and_a_closed_idle_connection_are_sent_again() -> None:
    async def test() -> None:
        # Each connection answers once, then the server closes it: the first request
        # on a connection the peer closed while idle goes out again on a new one.
        server, per_conn = await _serve(lambda n: OK, close_after=1)
        pool = Pool(LOOPBACK)
        dest = destination(_url(server), LOOPBACK)
        for _ in range(3):
            assert (await pool.post(dest, b"", b"{}", 5.0))[0] == 200
            await asyncio.sleep(0.05)  # the server's close arrives while idle
        closing = b"HTTP/1.1 503 No\r\nRetry-After: 7\r\nConnection: close\r\n\r\n"
        server2, _ = await _serve(lambda n: closing, close_after=1)
        dest2 = destination(_url(server2), LOOPBACK)
        assert await pool.post(dest2, b"", b"{}", 5.0) == (503, "7")  # ended by the close
        # The peer closes a kept-alive connection as our second request arrives (no
        # answer byte): the request goes out again on a new connection, once.
        server3, per_conn3 = await _serve(lambda n: None if n == 2 else OK)
        dest3 = destination(_url(server3), LOOPBACK)
        assert [(await pool.post(dest3, b"", b"{}", 5.0))[0] for _ in range(2)] == [200, 200]
        pool.close()
        for s in (server, server2, server3):
            s.close()
        assert per_conn == [1, 1, 1]
        assert per_conn3 == [2, 1]

    _run(test)


def test_chunked_interim_and_oversized_answers() -> None:
    async def test() -> None:
        answers = {
            1: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            2: b"HTTP/1.1 302 Found\r\nLocation: /x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n",
            3: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_RESPONSE_BYTES * 2)
            + b"x" * (MAX_RESPONSE_BYTES * 2),
        }
        server, per_conn = await _serve(lambda n: answers[n])
        pool = Pool(LOOPBACK)
        dest = destination(_url(server), LOOPBACK)
        statuses = [(await pool.post(dest, b"", b"{}", 5.0))[0] for _ in range(3)]
        assert statuses == [204, 302, 200]  # the redirect is an answer, not followed
        assert per_conn == [3]  # one connection for the three
        pool.close()
        server.close()

    _run(test)


def test_garbage_timeout_and_the_guard() -> None:
    async def test() -> None:
        garbage, _ = await _serve(lambda n: b"SMTP ready\r\n\r\n")
        silent, _ = await _serve(lambda n: b"")
        pool = Pool(LOOPBACK)
        with pytest.raises(ProtocolError):
            await pool.post(destination(_url(garbage), LOOPBACK), b"", b"{}", 5.0)
        with pytest.raises(TimeoutError):
            await pool.post(destination(_url(silent), LOOPBACK), b"", b"{}", 0.2)
        # Loopback not allowed: a literal is refused at once, a name when connecting
        # (the pool resolves it and checks every address).
        with pytest.raises(UnsafeURL):
            destination(_url(silent))
        port = silent.sockets[0].getsockname()[1]
        named = destination(f"http://localhost:{port}/", LOOPBACK)
        with pytest.raises(UnsafeURL):
            await Pool().post(named, b"", b"{}", 5.0)
        pool.close()
        garbage.close()
        silent.close()

    _run(test)
