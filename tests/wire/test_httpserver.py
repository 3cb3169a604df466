"""omnirelay/httpserver.py (ADR 41): under httptools an answer keeps canonical header names
and leaves in one write; nothing held is lost or reordered. (The names on the wire of a
real ``omnirelay serve`` are tests/wire/test_headers.py's.)"""

from __future__ import annotations

import asyncio
from typing import Any

from omnirelay.httpserver import _Coalescing, canonical_head

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-ratelimit-limit: 5\r\n\r\n"


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_the_header_block_gets_canonical_names_and_values_stay() -> None:
    assert canonical_head(HEAD) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Limit: 5\r\n\r\n"
    )


def test_an_answer_is_one_write_and_a_lone_head_is_flushed_at_the_turn_end() -> None:
    async def scenario() -> FakeTransport:
        raw = FakeTransport()
        t = _Coalescing(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        t.write(b'{"a":1}')
        assert raw.writes == [canonical_head(HEAD) + b'{"a":1}']  # one send, names fixed
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # a head with no write after it
        assert len(raw.writes) == 1
        await asyncio.sleep(0)  # the loop's turn ends: it goes out by itself
        assert raw.writes[1] == b"HTTP/1.1 100 Continue\r\n\r\n"
        t.write(HEAD)
        t.close()  # an error answer then close: the held head is written first
        assert raw.writes[2] == canonical_head(HEAD) and raw.closed
        assert t.get_extra_info("peername") == "info:peername"  # the rest is the transport's
        return raw

    raw = asyncio.run(scenario())
    assert len(raw.writes) == 3
