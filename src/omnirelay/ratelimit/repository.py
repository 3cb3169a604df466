"""The shared counters: atomic lease of quota; correct across processes because the
database does the addition."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from omnirelay.ratelimit.models import RateLimitCounter
from omnirelay.tenancy.models import Organization


def add(session: Session, organization_id: str, window_start: int, n: int) -> int:
    """Count ``n`` more calls in the window; the count after (it may pass the limit: the
    caller is granted only what was left below it)."""
    insert = (
        postgresql.insert(RateLimitCounter)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(RateLimitCounter)
    )
    stmt = (
        insert.values(organization_id=organization_id, window_start=window_start, count=n)
        .on_conflict_do_update(
            index_elements=["organization_id", "window_start"],
            set_={"count": RateLimitCounter.count + n},
        )
        .returning(RateLimitCounter.count)
    )
    return int(session.execute(stmt).scalar_one())


def delete_before(session: Session, organization_id: str, window_start: int) -> None:
    session.execute(
        delete(RateLimitCounter).where(
            RateLimitCounter.organization_id == organization_id,
            RateLimitCounter.window_start < window_start,
        )
    )


def limits(session: Session, organization_ids: Iterable[str]) -> dict[str, int | None]:
    """Each existing organization's own limit (None: the server's default)."""
    ids = list(organization_ids)
    rows = session.execute(
        select(Organization.id, Organization.rate_limit_requests).where(Organization.id.in_(ids))
    )
    return {org_id: limit for org_id, limit in rows}
