"""One sweep, in the caller's transaction. Safe to run in several processes at once:
each step deletes only what nothing needs, and deleting twice is harmless."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from omnirelay.gateway import service as gateway
from omnirelay.idempotency import service as idempotency

# An upload is saved before its request's transaction commits; a file younger than this
# may belong to a request still in flight (which answers within accept_timeout_seconds).
UPLOAD_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Swept:
    idempotency_keys: int
    files: int


def sweep(session: Session, media_dir: str, now: datetime) -> Swept:
    return Swept(
        idempotency_keys=idempotency.purge_expired(session, now),
        files=gateway.discard_unused_files(session, media_dir, now - UPLOAD_GRACE),
    )
