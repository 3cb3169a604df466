"""The HTTP server of ``omnirelay serve``: uvicorn with uvloop and httptools, header names
kept canonical on the wire, each answer written in one system call (ADR 41).

uvicorn's httptools protocol lower-cases every response header name and writes the status
line with the headers in one ``transport.write`` and the body in another. Both matter on
the accept path: client code of the seed services reads ``Content-Type`` case-sensitively
(ADR 24), and in a process whose other threads (the drains, the SMPP session) want the GIL,
every system call the event loop makes gives the GIL away and waits to get it back
(measured: a third of the loop's time, docs/performance.md). :class:`_Coalescing` sits
between the protocol and its transport: it restores the canonical names in the header block
and holds the block until the body's write (or the end of the loop's turn), so that an
answer costs one ``send``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from omnirelay.surfaces.headers import canonical

_STATUS_LINE = b"HTTP/1.1 "


def canonical_head(block: bytes) -> bytes:
    """``HTTP/1.1 200 OK\\r\\ncontent-type: x\\r\\n\\r\\n`` with each name canonical."""
    lines = block.split(b"\r\n")
    for i in range(1, len(lines)):
        name, sep, value = lines[i].partition(b": ")
        if sep:
            lines[i] = canonical(name) + sep + value
    return b"\r\n".join(lines)


class _Coalescing:
    """A transport that joins a response's header block with the write after it.

    Everything else is the real transport's (``__getattr__``). A held block is written by
    the next ``write``, by ``close``, or at the end of the loop's current turn (an answer
    whose body comes later, a 100 Continue, an error answer then close), so nothing waits
    longer than the turn that wrote it, and the order of bytes is kept."""

    __slots__ = ("_held", "_loop", "_scheduled", "raw")

    def __init__(self, raw: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.raw = raw
        self._loop = loop
        self._held: bytes | None = None
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, bytes) and data.startswith(_STATUS_LINE):
            self.flush()
            self._held = canonical_head(data)
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._at_turn_end)
            return
        held, self._held = self._held, None
        self.raw.write(data if held is None else held + bytes(data))

    def _at_turn_end(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self.raw.is_closing():
            self.raw.write(held)

    def close(self) -> None:
        self.flush()
        self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class CanonicalHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through :class:`_Coalescing`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = _Coalescing(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)

    def handle_websocket_upgrade(self) -> None:
        # A WebSocket protocol gets the real transport (what it writes is its own frames).
        wrapped = self.transport
        if isinstance(wrapped, _Coalescing):
            wrapped.flush()
            self.transport = wrapped.raw
        super().handle_websocket_upgrade()
