"""Rules of media storage: what a file name and content type must be, making a slot,
checking and claiming it on upload, and sweeping expired unused slots."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from sqlalchemy.orm import Session

from omnirelay.errors import InvalidInput, NotFound
from omnirelay.media import repository as repo
from omnirelay.media.models import MediaSlot
from omnirelay.media.storage import Plan, Target, digest, new_plan
from omnirelay.security import constant_time_equal

SLOT_LIFETIME = timedelta(hours=1)  # seed 004: "the link is valid for 1 hour"
EXTENSION = re.compile(r"[A-Za-z0-9]{1,16}")
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
# Python's built-in table only (not /etc/mime.types): the same answer on every machine.
TYPES = mimetypes.MimeTypes(filenames=())
# Types whose common spellings the built-in table does not list under the extension.
ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "application/x-pdf": "application/pdf",
}


def clean_filename(filename: str) -> str:
    """The name the file is stored and linked under: its last path component, with an
    extension (the seed's rule)."""
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    if not name or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInput(
            "invalid_filename",
            "filename must be a file name without control characters",
            field="filename",
        )
    stem, _, extension = name.rpartition(".")
    if not stem.strip(".") or not EXTENSION.fullmatch(extension):
        raise InvalidInput(
            "filename_without_extension",
            "The file name must have the extension (e.g. contract.pdf)",
            field="filename",
        )
    return name


def content_type_for(filename: str, given: str | None) -> str:
    """The slot's content type: ``given`` if it fits the file name's extension, else a
    clear error; without ``given``, the extension's type (application/octet-stream for an
    extension the table does not know)."""
    extension = "." + filename.rpartition(".")[2].lower()
    known = TYPES.types_map[True].get(extension) or TYPES.types_map[False].get(extension)
    if given is None or not given.strip():
        return known or "application/octet-stream"
    wanted = given.split(";")[0].strip().lower()
    wanted = ALIASES.get(wanted, wanted)
    if not MEDIA_TYPE.fullmatch(wanted):
        raise InvalidInput(
            "invalid_content_type",
            "contentType must be a media type such as image/png",
            field="contentType",
        )
    fits = extension in TYPES.guess_all_extensions(wanted, strict=False)
    if known is not None and not fits and wanted != "application/octet-stream":
        raise InvalidInput(
            "content_type_mismatch",
            f"contentType {wanted} does not match the file name {filename} ({known})",
            field="contentType",
        )
    return wanted


def plan_slot(filename: str, content_type: str | None, now: datetime) -> Plan:
    """Everything about a new slot that needs neither the database nor the network."""
    name = clean_filename(filename)
    return new_plan(name, content_type_for(name, content_type), now + SLOT_LIFETIME)


def create_slot(
    session: Session, organization_id: str, plan: Plan, target: Target, backend: str
) -> MediaSlot:
    return repo.add(
        session,
        MediaSlot(
            id=plan.slot_id,
            organization_id=organization_id,
            backend=backend,
            token_hash=digest(plan.upload_token) if backend == "local" else None,
            key=target.key,
            filename=plan.filename,
            content_type=plan.content_type,
            expires_at=plan.expires_at,
        ),
    )


def find_slot(session: Session, slot_id: str) -> MediaSlot | None:
    return repo.get(session, slot_id)


def uploaded(session: Session, key: str) -> MediaSlot | None:
    """The slot of a stored file, by its key; None until its upload was claimed."""
    slot = repo.by_key(session, key)
    return slot if slot is not None and slot.used_at is not None else None


def check_upload(
    slot: MediaSlot | None, token: str | None, content_type: str | None, now: datetime
) -> MediaSlot:
    """Whether a form may upload into ``slot``: the slot's own token (another slot's, of
    this or another organization, is "no such slot"), its content type, unused, in time."""
    if (
        slot is None
        or slot.backend != "local"
        or slot.token_hash is None
        or not token
        or not constant_time_equal(digest(token), slot.token_hash)
    ):
        raise NotFound("slot_not_found", "No such upload slot (or a wrong token)")
    if slot.used_at is not None:
        raise InvalidInput("slot_used", "This upload slot was used already; get a new one")
    if slot.expires_at <= now:
        raise InvalidInput("slot_expired", "This upload slot expired (valid 1 hour)")
    if content_type is not None and content_type.strip().lower() != slot.content_type:
        raise InvalidInput(
            "content_type_mismatch",
            f"Content-Type must be {slot.content_type}, as the slot was made",
            field="Content-Type",
        )
    return slot


def claim(session: Session, slot_id: str, size: int, now: datetime) -> MediaSlot:
    """Mark the slot used by a complete upload of ``size`` bytes; refused when another
    upload won the race or the hour passed meanwhile."""
    if not repo.claim(session, slot_id, now, size):
        slot = repo.get(session, slot_id)
        if slot is not None and slot.used_at is not None:
            raise InvalidInput("slot_used", "This upload slot was used already; get a new one")
        raise InvalidInput("slot_expired", "This upload slot expired (valid 1 hour)")
    slot = repo.get(session, slot_id)
    assert slot is not None
    return slot


def purge_expired(session: Session, now: datetime, batch: int) -> int:
    """One batch of slots that expired unused (nothing of theirs is on disk: a file is
    moved into place only when its slot is claimed)."""
    return repo.delete_expired_unused(session, now, batch)
