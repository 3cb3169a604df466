"""Where uploaded files live, behind one small interface: local disk (the embedded
default) or an S3-compatible bucket (media/s3.py). A backend only computes the upload
form and the link; it never touches the database, and the local one never calls out."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from omnirelay.config import Settings
from omnirelay.errors import DomainError

MAX_SIZE = 10 * 1024 * 1024  # seed 004: "limited to 10 MB"
TOKEN = r"[A-Za-z0-9_-]{22,64}"  # what a link's token looks like (checked before any disk)


@dataclass(frozen=True)
class Plan:
    """A slot before it is stored: ids and secrets made fresh for it."""

    slot_id: str
    filename: str
    content_type: str
    expires_at: datetime
    upload_token: str = ""  # the local form's secret (shown once, stored hashed)
    link_token: str = ""  # the unguessable part of the direct link


@dataclass(frozen=True)
class Target:
    key: str
    url: str
    fields: dict[str, str]
    media_url: str


class Storage(Protocol):
    name: str  # "local" | "s3"

    def target(self, plan: Plan, base_url: str) -> Target:
        """The upload form and the link of a slot. ``base_url`` is where this surface is
        reached (``https://host/user``); a bucket ignores it."""
        ...

    def put(self, plan: Plan, base_url: str, data: bytes) -> Target:
        """Store ``data`` as the file of ``plan`` (an inbound message's attachment, which
        omnirelay itself holds): its key and link. I/O; never inside a transaction."""
        ...


def new_plan(filename: str, content_type: str, expires_at: datetime) -> Plan:
    return Plan(
        slot_id=secrets.token_hex(16),
        filename=filename,
        content_type=content_type,
        expires_at=expires_at,
        upload_token=secrets.token_urlsafe(32),
        link_token=secrets.token_urlsafe(24),
    )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LocalStorage:
    """Files under ``<media_dir>/storage/<digest of the link token>/<filename>``; the
    link carries the token, the disk only its digest. Uploads are written to
    ``storage/.incoming`` first and moved into place when the slot is claimed."""

    name = "local"

    def __init__(self, media_dir: str) -> None:
        self.root = Path(media_dir) / "storage"
        self.incoming = self.root / ".incoming"

    def target(self, plan: Plan, base_url: str) -> Target:
        base = base_url.rstrip("/")
        return Target(
            key=f"{digest(plan.link_token)}/{plan.filename}",
            url=f"{base}/media/store/{plan.slot_id}",
            fields={"Content-Type": plan.content_type, "token": plan.upload_token},
            media_url=f"{base}/media/files/{plan.link_token}/{quote(plan.filename)}",
        )

    def put(self, plan: Plan, base_url: str, data: bytes) -> Target:
        target = self.target(plan, base_url)
        incoming = self.new_incoming()
        try:
            incoming.write_bytes(data)
            self.place(incoming, target.key)
        finally:
            incoming.unlink(missing_ok=True)
        return target

    def remove(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def new_incoming(self) -> Path:
        self.incoming.mkdir(parents=True, exist_ok=True)
        return self.incoming / f"{secrets.token_hex(16)}.part"

    def place(self, incoming: Path, key: str) -> Path:
        """Move a complete upload to its key (same file system: atomic)."""
        final = self.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, final)
        return final

    def find(self, link_token: str, filename: str) -> Path | None:
        """The file a link names, if it was uploaded."""
        if filename in ("", ".", "..") or "/" in filename or "\x00" in filename:
            return None
        path = self.root / digest(link_token) / filename
        return path if path.is_file() else None


def from_settings(settings: Settings) -> Storage:
    if settings.media_s3_bucket:
        return _s3(
            settings.media_s3_bucket,
            settings.media_s3_endpoint_url,
            settings.media_s3_region,
            settings.media_s3_access_key_id,
            settings.media_s3_secret_access_key,
            settings.media_s3_prefix,
            settings.media_s3_public_url,
            settings.media_s3_acl,
        )
    return LocalStorage(settings.media_dir)


@lru_cache(maxsize=8)
def _s3(*config: str) -> Storage:
    # One client per configuration and process: building one reads botocore's service
    # model (tens of milliseconds); clients are thread-safe.
    from omnirelay.media.s3 import S3Storage

    try:
        return S3Storage(*config)
    except Exception as exc:  # botocore's: an invalid endpoint or region, ...
        raise StorageUnavailable(
            "storage_unavailable", f"The media bucket is not usable: {exc}"
        ) from exc


class StorageUnavailable(DomainError):
    """The bucket's credentials or settings do not let omnirelay sign a slot."""

    status = 503
