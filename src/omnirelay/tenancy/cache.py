"""An in-process cache of API token checks (``Authorization: Token <key>`` -> organization).

The accept path must not read the database for every request (issue 13): a token's answer
is kept for ``ttl`` seconds. A change to the credentials (a regenerated API token revokes
the old ones) is seen at once by the process that committed it (``changed`` runs after its
commit and empties every cache of the process) and within ``ttl`` by every other process,
which re-reads the token then. Refusals are cached too, so a stream of bad tokens costs
one read per token and second, not one per request; the cache is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from omnirelay.db import Database
from omnirelay.errors import Unauthorized
from omnirelay.security import hash_secret
from omnirelay.tenancy import repository as repo

_generation = 0  # bumped after every commit that changed credentials in this process


def _bump(_: Session) -> None:
    global _generation
    _generation += 1


def changed(session: Session) -> None:
    """Call in a transaction that revokes or issues credentials: the process's caches are
    emptied when it commits (not before: a rollback leaves them valid)."""
    if not session.info.get("omnirelay_credentials_changed"):
        session.info["omnirelay_credentials_changed"] = True
        event.listen(session, "after_commit", _bump, once=True)


def parse_token(authorization: str | None) -> str:
    """The key of ``Token <key>``, or the surface's 401."""
    if not authorization or not authorization.strip():
        raise Unauthorized("missing_token", "Authorization header with 'Token <key>' is missing")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "token" or not value.strip():
        raise Unauthorized("malformed_token", "Authorization header must be 'Token <key>'")
    return value.strip()


def invalid_token() -> Unauthorized:
    return Unauthorized("invalid_token", "Invalid token")


class ApiTokenCache:
    """Token digest -> organization id (or None: refused), each for ``ttl`` seconds."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.reads = 0  # database reads made, for tests and diagnostics
        self._entries: dict[str, tuple[str | None, float]] = {}
        self._generation = _generation

    def organization(self, authorization: str | None) -> str:
        """The organization of the token; raises the surface's Unauthorized."""
        token = parse_token(authorization)
        now = self.clock()
        if self._generation != _generation:
            self._entries.clear()
            self._generation = _generation
        found = self._entries.get(token)
        if found is None or found[1] <= now:
            generation = _generation
            found = (self._read(token), now + self.ttl)
            if generation == _generation:  # not a read from before a revocation committed
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()  # bounded; a full cache is rare, cheap to refill
                self._entries[token] = found
        if found[0] is None:
            raise invalid_token()
        return found[0]

    def _read(self, token: str) -> str | None:
        # Keyed by the token itself in memory (this process saw it anyway); the database
        # only ever sees its digest. A read session: on SQLite it never waits for writers.
        self.reads += 1
        with self.db.read() as session:
            row = repo.find_api_token(session, hash_secret(token))
            return None if row is None else row.organization_id
