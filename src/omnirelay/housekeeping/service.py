"""The steps of a sweep, each in the caller's session. Safe to run in several processes
at once: each deletes only what nothing needs, and deleting twice is harmless."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from omnirelay.gateway import service as gateway
from omnirelay.idempotency import service as idempotency
from omnirelay.media import service as media
from omnirelay.media.storage import LocalStorage

# An upload is saved before its request's transaction commits; a file younger than this
# may belong to a request still in flight (which answers within accept_timeout_seconds).
UPLOAD_GRACE = timedelta(hours=1)
BATCH = 1000  # rows per write transaction: on SQLite a transaction holds the write lock


def purge_idempotency_keys(session: Session, now: datetime) -> int:
    """One batch (at most BATCH); the caller repeats, a transaction each, while full."""
    return idempotency.purge_expired(session, now, BATCH)


def discard_unused_uploads(session: Session, media_dir: str, now: datetime) -> int:
    """Reads only: run it in a read session (it stats files and unlinks them)."""
    return gateway.discard_unused_files(session, media_dir, now - UPLOAD_GRACE)


def purge_media_slots(session: Session, now: datetime) -> int:
    """One batch (at most BATCH) of media upload slots that expired unused."""
    return media.purge_expired(session, now, BATCH)


def discard_stalled_media(media_dir: str, now: datetime) -> int:
    """Partial media uploads left by a process that died mid-upload (a live upload is
    moved into place, or removed, within its request). No database needed."""
    folder = LocalStorage(media_dir).incoming
    if not folder.is_dir():
        return 0
    cutoff = (now - UPLOAD_GRACE).timestamp()
    removed = 0
    for path in folder.glob("*.part"):
        try:
            if path.stat().st_mtime >= cutoff:
                continue
        except FileNotFoundError:  # finished meanwhile
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed
