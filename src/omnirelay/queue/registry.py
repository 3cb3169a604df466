"""Task handlers by kind. Domains register theirs in their ``tasks.py``:

@tasks.task("webhooks.example")
def example(session: Session, job: JobContext) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from omnirelay.db import Database


@dataclass(frozen=True)
class JobContext:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one
    organization_id: str | None
    run_at: datetime


Handler = Callable[[Session, JobContext], None]
# A batch handler gets every job of its kind in a batch and ``one``, which runs a job
# through its plain handler in a savepoint (with the usual retry rules); the jobs it
# handles itself are done when it returns.
BatchHandler = Callable[[Session, list[JobContext], Callable[[JobContext], None]], None]
# An I/O handler runs with no transaction open (a provider's HTTP API): it opens its own
# short transactions through the database it is given; the job is completed after it.
IOHandler = Callable[["Database", JobContext], None]


class Retry(Exception):
    """Raise from a handler to run the job again after ``delay`` seconds (an attempt)."""

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested")
        self.delay = delay
        self.reason = reason


class PermanentFailure(Exception):
    """Raise from a handler when retrying cannot help: the job goes to the dead letters."""


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._batched: set[str] = set()
        self._batch_handlers: dict[str, BatchHandler] = {}
        self._io_handlers: dict[str, IOHandler] = {}

    def task(self, kind: str, *, batched: bool = False) -> Callable[[Handler], Handler]:
        """``batched``: the handler only reads and writes the database (no network, no
        sleeping), so the worker may run many jobs of it in one transaction, each in its
        own savepoint (ADR 18)."""

        def register(fn: Handler) -> Handler:
            if kind in self._handlers and self._handlers[kind] is not fn:
                raise ValueError(f"task kind {kind!r} registered twice")
            self._handlers[kind] = fn
            if batched:
                self._batched.add(kind)
            return fn

        return register

    def batch(self, kind: str) -> Callable[[BatchHandler], BatchHandler]:
        """A set-based handler for a ``batched`` kind (ADR 18)."""

        def register(fn: BatchHandler) -> BatchHandler:
            self._batch_handlers[kind] = fn
            self._batched.add(kind)
            return fn

        return register

    def io_task(self, kind: str) -> Callable[[IOHandler], IOHandler]:
        """A handler that does network I/O: the worker calls it with no transaction open
        (the project's rule: no network call inside a transaction). At-least-once: a
        handler whose job is retried must find out from the database what it did."""

        def register(fn: IOHandler) -> IOHandler:
            if kind in self._handlers or self._io_handlers.get(kind, fn) is not fn:
                raise ValueError(f"task kind {kind!r} registered twice")
            self._io_handlers[kind] = fn
            return fn

        return register

    def get_io(self, kind: str) -> IOHandler | None:
        return self._io_handlers.get(kind)

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def get_batch(self, kind: str) -> BatchHandler | None:
        return self._batch_handlers.get(kind)

    def batched(self, kind: str) -> bool:
        return kind in self._batched

    def kinds(self) -> list[str]:
        return sorted([*self._handlers, *self._io_handlers])


tasks = TaskRegistry()
