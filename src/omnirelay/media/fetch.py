"""The ``inbound.attachments`` drain step (drain.py, ADR 37): attachments a provider only
names (a Telegram file id, ...) are downloaded after their message is stored. Claim a
batch of due fetches with their connections' settings; download and store them with no
transaction open (the provider's fetcher goes through ProviderHTTP, the storage may be a
bucket); record each link or failure on its message in one short transaction, and once a
message has no fetch left, send its ``reply`` webhook (so that it carries final links)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from omnirelay import wakeup
from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.config import Settings
from omnirelay.connections import repository as connections_repo
from omnirelay.db import utcnow
from omnirelay.drain import lease_until
from omnirelay.media import inbound as media
from omnirelay.media.models import InboundFetch
from omnirelay.media.storage import MAX_SIZE, from_settings
from omnirelay.messaging.models import InboundMessage
from omnirelay.net.provider_http import ProviderHTTP

log = logging.getLogger(__name__)
CHANNEL = "omnirelay_inbound_attachments"
LEASE_SECONDS = 120.0
MAX_TRIES = 5


@dataclass(frozen=True)
class Download:
    data: bytes
    filename: str | None
    content_type: str | None


class TooLarge(Exception):
    """The provider says (or the body shows) the file is over MAX_SIZE."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


# provider -> fetcher(connection settings, ref): the file's bytes. Raises RetriableError
# (try again later), PermanentError (give up) or TooLarge. Registered by the providers'
# modules (explicitly, from their own import).
Fetcher = Callable[[dict[str, Any], str], Download]
FETCHERS: dict[str, Fetcher] = {}
# provider -> what runs once a message has no fetch left (session, inbound id, the
# context given to ``add``); without one, its held ``reply`` webhook goes out
# (sessions.attachments_done). The gateway's sends its held device webhook instead.
Done = Callable[[Session, int, dict[str, Any] | None], None]
DONE: dict[str, Done] = {}


def download(
    http: ProviderHTTP,
    url: str,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    timeout: float,
) -> Download:
    """GET a provider's file through its ProviderHTTP (an address outside the provider's
    own hosts is SSRF-checked and pinned). 5xx/429 and transport errors: try again; any
    other refusal: give up; a stated Content-Length over MAX_SIZE: TooLarge."""
    answer = http.request("GET", url, headers=headers, timeout=timeout)
    if answer.status_code >= 500 or answer.status_code == 429:
        raise RetriableError(f"{what}: HTTP {answer.status_code}")
    if not answer.is_success:
        raise PermanentError(f"{what}: HTTP {answer.status_code}")
    stated = answer.headers.get("content-length", "")
    if stated.isdigit() and int(stated) > MAX_SIZE:
        raise TooLarge(int(stated))
    return Download(answer.content, None, answer.headers.get("content-type"))


def add(
    session: Session,
    organization_id: str,
    inbound_id: int,
    connection_id: int,
    provider: str,
    refs: list[tuple[int, str]],
    context: dict[str, Any] | None = None,
) -> None:
    """Fetches of an inbound message's attachments ((position, ref) each)."""
    for position, ref in refs:
        session.add(
            InboundFetch(
                organization_id=organization_id,
                inbound_id=inbound_id,
                connection_id=connection_id,
                provider=provider,
                ref=ref,
                position=position,
                due_at=utcnow(),
                tries=0,
                context=context,
            )
        )
    session.flush()
    wakeup.notify(session, CHANNEL)


@dataclass(frozen=True)
class Claimed:
    id: int
    organization_id: str
    inbound_id: int
    provider: str
    ref: str
    position: int
    tries: int
    settings: dict[str, Any]
    name: str | None = None  # what the provider's message said of the file
    content_type: str | None = None
    context: dict[str, Any] | None = None
    size: int | None = None  # as the provider's message stated it


@dataclass(frozen=True)
class Outcome:
    stored: media.Stored | None = None  # None: try again later
    error: str | None = None


class FetchStep:
    name = "inbound.attachments"
    channel: str | None = CHANNEL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def claim(
        self, session: Session, claim_id: str, limit: int, now: datetime
    ) -> list[Claimed] | None:
        rows = session.scalars(
            select(InboundFetch)
            .where(
                InboundFetch.due_at <= now,
                (InboundFetch.lease_until.is_(None)) | (InboundFetch.lease_until < now),
            )
            .order_by(InboundFetch.due_at)
            .limit(limit)
            # Two drains (PostgreSQL, several processes) never take the same rows.
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return None
        ids = [r.id for r in rows]
        session.execute(
            update(InboundFetch)
            .where(InboundFetch.id.in_(ids))
            .values(claimed_by=claim_id, lease_until=lease_until(now, LEASE_SECONDS))
            .execution_options(synchronize_session=False)
        )
        out = []
        for row in rows:
            connection = connections_repo.get(session, row.organization_id, row.connection_id)
            settings = dict(connection.settings or {}) if connection is not None else {}
            message = session.get(InboundMessage, row.inbound_id)
            items = (message.attachments or []) if message is not None else []
            known = items[row.position] if row.position < len(items) else {}
            out.append(
                Claimed(
                    row.id,
                    row.organization_id,
                    row.inbound_id,
                    row.provider,
                    row.ref,
                    row.position,
                    row.tries,
                    settings,
                    known.get("name"),
                    known.get("contentType"),
                    row.context,
                    known.get("size") if isinstance(known.get("size"), int) else None,
                )
            )
        return out

    def size(self, batch: list[Claimed]) -> int:
        return len(batch)

    def io(self, batch: list[Claimed]) -> list[Outcome]:
        storage = from_settings(self.settings)
        base = self.settings.public_url.rstrip("/") + "/user"
        return [self._one(storage, base, item) for item in batch]

    def _one(self, storage: Any, base: str, item: Claimed) -> Outcome:
        fetcher = FETCHERS.get(item.provider)
        if fetcher is None or not item.settings:
            return Outcome(error="download_failed")
        if item.size is not None and item.size > MAX_SIZE:
            return Outcome(error=f"file_too_large:{item.size}")  # stated: not downloaded
        try:
            got = fetcher(item.settings, item.ref)
        except TooLarge as exc:
            return Outcome(error=f"file_too_large:{exc.size}")
        except RetriableError as exc:
            log.info("attachment %s: %s", item.id, exc)
            return Outcome(error="download_failed" if item.tries + 1 >= MAX_TRIES else None)
        except PermanentError as exc:
            log.info("attachment %s: %s", item.id, exc)
            return Outcome(error="download_failed")
        if len(got.data) > MAX_SIZE:
            return Outcome(error=f"file_too_large:{len(got.data)}")
        # The message's own name and type first: a download's are often generic.
        name = item.name or got.filename
        kind = item.content_type or got.content_type
        stored = media.store(storage, base, got.data, name, kind, item.position)
        return Outcome(stored=stored)

    def record(
        self, session: Session, batch: list[Claimed], outcomes: list[Outcome], claim_id: str
    ) -> None:
        from omnirelay.messaging import sessions

        now = utcnow()
        finished: dict[int, Claimed] = {}
        for item, outcome in zip(batch, outcomes, strict=True):
            row = session.get(InboundFetch, item.id)
            if row is None or row.claimed_by != claim_id:
                continue  # the lease lapsed and another drain took it over
            if outcome.stored is None and outcome.error is None:
                row.tries += 1
                row.claimed_by, row.lease_until = None, None
                row.due_at = now + timedelta(seconds=min(600, 5 * 4**row.tries))
                continue
            if outcome.stored is not None:
                [link] = media.register(session, item.organization_id, [outcome.stored], now)
            else:
                code, _, size = (outcome.error or "").partition(":")
                link = {"error": code, **({"size": int(size)} if size else {})}
            sessions.set_attachment(session, item.inbound_id, item.position, link)
            session.delete(row)
            finished[item.inbound_id] = item
        session.flush()
        for inbound_id, item in finished.items():
            left = session.scalar(
                select(func.count())
                .select_from(InboundFetch)
                .where(InboundFetch.inbound_id == inbound_id)
            )
            if not left:
                done = DONE.get(item.provider)
                if done is not None:
                    done(session, inbound_id, item.context)
                else:
                    sessions.attachments_done(session, inbound_id)

    def next_due(self, session: Session) -> datetime | None:
        return session.scalar(select(func.min(InboundFetch.due_at)))
