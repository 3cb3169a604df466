"""This process's open visitor sockets, by widget key and visitor id.

The adapter posts from a worker thread; each socket reads its own asyncio queue on the
server's event loop, so a post is ``call_soon_threadsafe``. The hub is per process: a
visitor whose socket is on another process is woken by a notice once the send is
committed (webchat/notices.py, ADR 44) and reads it from the database
(webchat/service.pending); a slow poll is the safety net (docs/channels/webchat.md).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 256  # frames waiting for one slow socket; past it the socket is closed
WAKE = "\x00wake"  # not a frame: the socket reads its visitor's waiting sends


def outbound_frame(provider_id: str, text: str) -> str:
    return json.dumps({"type": "message", "id": provider_id, "text": text})


@dataclass(eq=False)
class Sink:
    """One open socket: its loop and the queue its sender task reads."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    woken: bool = False  # a WAKE is queued and not yet taken

    def put(self, frame: str) -> None:
        def _put() -> None:
            if not self.queue.full():  # a socket that stopped reading loses live frames,
                self.queue.put_nowait(frame)  # not messages: those come back by polling

        self.loop.call_soon_threadsafe(_put)

    def wake(self) -> None:
        """Read the waiting sends: once, however many notices come before the read."""

        def _wake() -> None:
            if not self.woken and not self.queue.full():
                self.woken = True
                self.queue.put_nowait(WAKE)

        self.loop.call_soon_threadsafe(_wake)


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

    def wake(self, key: str, visitor: str) -> int:
        """A send to the visitor is committed: their sockets here read it."""
        with self._lock:
            sinks = list(self._sinks.get((key, visitor), ()))
        for sink in sinks:
            sink.wake()
        return len(sinks)

    def wake_all(self) -> None:
        with self._lock:
            sinks = [s for group in self._sinks.values() for s in group]
        for sink in sinks:
            sink.wake()

    def typing(self, key: str, visitor: str) -> None:
        """The visitor is typing: kept for the operator side (``typing_since``)."""
        with self._lock:
            self._typing[(key, visitor)] = time.monotonic()

    def typing_since(self, key: str, visitor: str) -> float | None:
        with self._lock:
            return self._typing.get((key, visitor))


HUB = Hub()
