"""Attachments of inbound messages, kept in the media storage (ADR 37): the checks a file
must pass (10 MB at most, a file name with an extension, a content type that fits it),
storing it (I/O: local disk or the bucket, never inside a transaction), and recording it
as a used media slot, so that its direct link is served like an uploaded file's.

An attachment that fails a check or cannot be stored is kept as its name, type, size and
the reason (``error``); the message's text is never lost for it."""

from __future__ import annotations

import mimetypes
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.errors import DomainError
from omnirelay.media import repository as repo
from omnirelay.media.models import MediaSlot
from omnirelay.media.service import TYPES, clean_filename, content_type_for
from omnirelay.media.storage import MAX_SIZE, Storage, new_plan

MAX_FILES = 20  # attachments kept per message (the rest are listed as refused)


@dataclass(frozen=True)
class Stored:
    """One attachment after storing: ``key`` is None when it was not stored."""

    name: str
    content_type: str
    size: int
    backend: str
    key: str | None = None
    media_url: str | None = None
    error: str | None = None

    def link(self) -> dict[str, Any]:
        """As the inbound message, the ``reply`` URL and the API show it."""
        out: dict[str, Any] = {"name": self.name, "contentType": self.content_type}
        out["size"] = self.size
        if self.media_url is not None:
            out["mediaUrl"] = self.media_url
        else:
            out["error"] = self.error
        return out


def _name(filename: str | None, content_type: str) -> str:
    """A usable file name: the sender's, or ``attachment`` with the type's extension."""
    try:
        return clean_filename(filename or "")
    except DomainError:
        pass
    base = (filename or "attachment").replace("/", "_").strip() or "attachment"
    base = "".join(c for c in base if c.isprintable())[:100] or "attachment"
    extension = TYPES.guess_extension(content_type) or mimetypes.guess_extension(content_type)
    return f"{base.rstrip('.')}{extension or '.bin'}"


def store(
    storage: Storage,
    base_url: str,
    data: bytes,
    filename: str | None,
    content_type: str | None,
    index: int = 0,
) -> Stored:
    """Check and store one file (I/O). A refusal is an outcome, not an exception."""
    declared = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    name = _name(filename, declared)
    size = len(data)
    if index >= MAX_FILES:
        return Stored(name, declared, size, storage.name, error="too_many_attachments")
    if size > MAX_SIZE:
        return Stored(name, declared, size, storage.name, error="file_too_large")
    if size == 0:
        return Stored(name, declared, size, storage.name, error="empty_file")
    try:
        kind = content_type_for(name, declared)
    except DomainError as exc:
        return Stored(name, declared, size, storage.name, error=exc.code)
    plan = new_plan(name, kind, utcnow())  # no expiry: nothing uploads into it
    try:
        target = storage.put(plan, base_url, data)
    except (OSError, DomainError) as exc:
        code = exc.code if isinstance(exc, DomainError) else "storage_failed"
        return Stored(name, kind, size, storage.name, error=code)
    return Stored(name, kind, size, storage.name, key=target.key, media_url=target.media_url)


def register(
    session: Session, organization_id: str, files: list[Stored], now: datetime
) -> list[dict[str, Any]]:
    """Record the stored files as used slots of ``organization_id`` (the link route
    serves a file only once its slot is used); the attachments as the message keeps
    them."""
    for file in files:
        if file.key is None:
            continue
        repo.add(
            session,
            MediaSlot(
                id=secrets.token_hex(16),
                organization_id=organization_id,
                backend=file.backend,
                token_hash=None,  # nothing uploads into it: it is used from the start
                key=file.key,
                filename=file.name,
                content_type=file.content_type,
                size=file.size,
                expires_at=now,
                used_at=now,
            ),
        )
    return [f.link() for f in files]
