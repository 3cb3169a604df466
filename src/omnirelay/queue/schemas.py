"""Wire models of the jobs part of the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from omnirelay.tenancy.schemas import Wire

JobStatus = Literal["todo", "doing", "dead"]


class JobOut(Wire):
    id: int
    kind: str
    status: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    run_at: datetime
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class JobList(Wire):
    items: list[JobOut]
    limit: int
    offset: int
