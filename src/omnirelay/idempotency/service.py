"""``Idempotency-Key``: the first successful answer to a create is stored with the rows it
created, in the same transaction, and replayed for 24 hours to a retry with the same key.

Errors are not stored: a refused request writes nothing, so retrying it is safe anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omnirelay.db import Database, utcnow
from omnirelay.errors import Conflict, InvalidInput
from omnirelay.idempotency import repository as repo
from omnirelay.idempotency.models import IdempotencyKey

TTL = timedelta(hours=24)
MAX_KEY = 255

Answer = tuple[int, Any]  # HTTP status, JSON body


def purge_expired(session: Session, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` keys older than ``TTL`` (no longer replayed); their count."""
    return repo.purge_before(session, now - TTL, limit)


def request_hash(path: str, body: bytes) -> str:
    return hashlib.sha256(path.encode() + b"\n" + body).hexdigest()


def _replay(row: IdempotencyKey, digest: str) -> Answer:
    if row.request_hash != digest:
        raise Conflict(
            "idempotency_key_reused",
            "Idempotency-Key was already used with a different request",
            field="Idempotency-Key",
        )
    return row.status_code, row.response


def run(
    db: Database,
    organization_id: str,
    key: str | None,
    path: str,
    body: bytes,
    create: Callable[[Session], Answer],
) -> tuple[Answer, bool]:
    """Run ``create`` in one transaction, or replay the stored answer. Returns the
    answer and whether it is a replay."""
    if key is None:
        with db.transaction() as session:
            return create(session), False
    key = key.strip()
    if not key or len(key) > MAX_KEY:
        raise InvalidInput("invalid_idempotency_key", f"Idempotency-Key is 1..{MAX_KEY} chars")
    digest = request_hash(path, body)
    try:
        with db.transaction() as session:
            row = repo.get(session, organization_id, key)
            if row is not None and row.created_at > utcnow() - TTL:
                return _replay(row, digest), True
            if row is not None:
                repo.remove(session, row)  # expired: the key starts afresh
            status, response = create(session)
            repo.add(
                session,
                IdempotencyKey(
                    organization_id=organization_id,
                    key=key,
                    request_hash=digest,
                    status_code=status,
                    response=response,
                    created_at=utcnow(),
                ),
            )
            return (status, response), False
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        with db.transaction() as session:
            row = repo.get(session, organization_id, key)
            if row is None:
                raise
            return _replay(row, digest), True
