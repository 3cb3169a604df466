"""What planning a notification reads of its organization, cached per process (issue 15,
ADR 38): its live connections by designation, its approved template entries by
designation, its default route. A notification then costs one read of its own (the
contact by phone) before the group commit, not four.

Kept as the token cache keeps credentials (tenancy/cache.py): a write to a connection, a
template or its channel entries, or the notification settings is seen at once by the
process that committed it (mapper events mark the organization in the transaction, its
commit bumps the organization's generation), and within ``TTL`` by every other process,
which reads again then. A snapshot read before such a commit is not kept. What a stale
snapshot can do is bounded: the accepting transaction checks the step's connection
again (messaging.service.accept), so a connection deleted elsewhere a moment ago is a
refusal there, never a send through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, Session, object_session

from omnirelay.connections import designations
from omnirelay.connections.models import ChannelConnection
from omnirelay.messaging import repository as messaging_repo
from omnirelay.messaging.models import NotifySettings
from omnirelay.templates import repository as templates_repo
from omnirelay.templates.models import Template, TemplateChannel

TTL = 1.0  # seconds another process's change may take to be seen (as the token cache's)
MAX_ORGANIZATIONS = 10_000
_KEY = "omnirelay_planning_changed"


@dataclass(frozen=True)
class Connection:
    """What planning needs of a connection (no ORM object outlives its session)."""

    id: int
    channel: str
    designation: str | None
    active: bool
    senders: tuple[str, ...]
    templates_only: bool

    @classmethod
    def of(cls, row: ChannelConnection) -> Connection:
        return cls(
            row.id,
            row.channel,
            designations.of(row),
            bool(row.active),
            tuple(row.senders or ()),
            bool(row.templates_only),
        )


# (entry id, template id, template uuid, template text), in the templates' order.
Entry = tuple[int, int, str, str]


@dataclass(frozen=True)
class Snapshot:
    groups: dict[str, tuple[Connection, ...]]  # designation -> connections, by id
    templates: dict[str, tuple[Entry, ...]]  # designation -> approved entries
    default_route: tuple[str, ...]  # the default route's designations (may be empty)


def read(session: Session, organization_id: str) -> Snapshot:
    """The snapshot as the database has it now: three indexed reads."""
    groups = {
        name: tuple(Connection.of(r) for r in rows)
        for name, rows in designations.list_grouped(session, organization_id).items()
    }
    templates: dict[str, list[Entry]] = {}
    for channel, entry_id, template_id, uuid, text in templates_repo.approved_entries_of(
        session, organization_id
    ):
        templates.setdefault(channel, []).append((entry_id, template_id, uuid, text))
    row = messaging_repo.get_settings(session, organization_id)
    route: Sequence[dict[str, Any]] = row.default_route if row is not None else ()
    names = [str(s["channel"]) for s in route if s.get("channel") in designations.BY_NAME]
    return Snapshot(groups, {k: tuple(v) for k, v in templates.items()}, tuple(names))


# -- invalidation --------------------------------------------------------------------------

_generations: dict[str, int] = {}  # organization -> bumped after each commit changing it
_lock = threading.Lock()


def _bump(session: Session) -> None:
    changed: set[str] = session.info.pop(_KEY, set())
    with _lock:
        for organization_id in changed:
            _generations[organization_id] = _generations.get(organization_id, 0) + 1


def _forget(session: Session, _previous: Any) -> None:
    # after_soft_rollback passes the transaction that was rolled back as well
    session.info.pop(_KEY, None)


def _written(_mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    session = object_session(target)
    organization_id = getattr(target, "organization_id", None)
    if session is None or organization_id is None:
        return
    changed: set[str] | None = session.info.get(_KEY)
    if changed is None:
        changed = session.info[_KEY] = set()
        event.listen(session, "after_commit", _bump, once=True)
        event.listen(session, "after_soft_rollback", _forget, once=True)
    changed.add(str(organization_id))


_WATCHED = (ChannelConnection, Template, TemplateChannel, NotifySettings)


def install() -> None:
    """Watch the writes that change a snapshot (called once, from notifications.install)."""
    for model in _WATCHED:
        for name in ("after_insert", "after_update", "after_delete"):
            if not event.contains(model, name, _written):
                event.listen(model, name, _written)


# -- the cache -----------------------------------------------------------------------------


class PlanningCache:
    """Organization -> (snapshot, generation, read at), each kept ``ttl`` seconds."""

    def __init__(self, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.reads = 0  # snapshots read from the database, for tests and diagnostics
        self._entries: dict[tuple[str, str], tuple[Snapshot, int, float]] = {}

    def get(self, session: Session, organization_id: str) -> Snapshot:
        # One cache serves every database of the process (tests run two engines).
        key = (str(session.get_bind().engine.url), organization_id)
        now = self.clock()
        generation = _generations.get(organization_id, 0)
        found = self._entries.get(key)
        if found is not None and found[1] == generation and now - found[2] < self.ttl:
            return found[0]
        snapshot = read(session, organization_id)
        self.reads += 1
        if _generations.get(organization_id, 0) == generation:  # no commit changed it since
            if len(self._entries) >= MAX_ORGANIZATIONS:
                self._entries.clear()
            self._entries[key] = (snapshot, generation, now)
        return snapshot


CACHE = PlanningCache()  # the process's (the hot path and the route share it)
