"""Task handlers by kind. Domains register theirs in their ``tasks.py``:

@tasks.task("webhooks.example")
def example(session: Session, job: JobContext) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class JobContext:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one
    organization_id: str | None
    run_at: datetime


Handler = Callable[[Session, JobContext], None]


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

    def task(self, kind: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if kind in self._handlers and self._handlers[kind] is not fn:
                raise ValueError(f"task kind {kind!r} registered twice")
            self._handlers[kind] = fn
            return fn

        return register

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


tasks = TaskRegistry()
