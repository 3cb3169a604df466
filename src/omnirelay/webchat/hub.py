"""This process's open visitor sockets, by widget key and visitor id.

The adapter posts from a worker thread; each socket reads its own asyncio queue on the
server's event loop, so a post is ``call_soon_threadsafe``. The hub is per process: a
visitor whose socket is on another process gets the message from the database on its
next poll (webchat/service.pending; docs/channels/webchat.md, ADR 35).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 256  # frames waiting for one slow socket; past it the socket is closed


def outbound_frame(provider_id: str, text: str) -> str:
    return json.dumps({"type": "message", "id": provider_id, "text": text})


@dataclass(eq=False)
class Sink:
    """One open socket: its loop and the queue its sender task reads."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def put(self, frame: str) -> None:
        def _put() -> None:
            if not self.queue.full():  # a socket that stopped reading loses live frames,
                self.queue.put_nowait(frame)  # not messages: those come back by polling

        self.loop.call_soon_threadsafe(_put)


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: dict[tuple[str, str], set[Sink]] = {}
        self._typing: dict[tuple[str, str], float] = {}

    def join(self, key: str, visitor: str, sink: Sink) -> None:
        with self._lock:
            self._sinks.setdefault((key, visitor), set()).add(sink)

    def leave(self, key: str, visitor: str, sink: Sink) -> None:
        with self._lock:
            sinks = self._sinks.get((key, visitor))
            if sinks is not None:
                sinks.discard(sink)
                if not sinks:
                    del self._sinks[(key, visitor)]
                    self._typing.pop((key, visitor), None)

    def post(self, key: str, visitor: str, frame: str, *, skip: Sink | None = None) -> int:
        """``frame`` to every socket of the visitor here; how many got it queued."""
        with self._lock:
            sinks = [s for s in self._sinks.get((key, visitor), ()) if s is not skip]
        for sink in sinks:
            sink.put(frame)
        return len(sinks)

    def event(self, key: str, visitor: str, *, skip: Sink | None = None, **frame: Any) -> int:
        return self.post(key, visitor, json.dumps(frame), skip=skip)

    def typing(self, key: str, visitor: str) -> None:
        """The visitor is typing: kept for the operator side (``typing_since``)."""
        with self._lock:
            self._typing[(key, visitor)] = time.monotonic()

    def typing_since(self, key: str, visitor: str) -> float | None:
        with self._lock:
            return self._typing.get((key, visitor))


HUB = Hub()
