"""SQL of the block lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnirelay.blocklist.models import BlockedNetwork, BlockedPhone, OptOutSettings

CHUNK = 500  # bound parameters per IN list (SQLite's limit is far above)


def blocked_among(session: Session, organization_id: str, phones: Iterable[str]) -> set[str]:
    """Which of ``phones`` the organization blocked: one indexed query per 500 numbers."""
    wanted = sorted(set(phones))
    found: set[str] = set()
    for i in range(0, len(wanted), CHUNK):
        found.update(
            session.scalars(
                select(BlockedPhone.phone).where(
                    BlockedPhone.organization_id == organization_id,
                    BlockedPhone.phone.in_(wanted[i : i + CHUNK]),
                )
            )
        )
    return found


def phones(
    session: Session, organization_id: str, limit: int, offset: int
) -> tuple[Sequence[BlockedPhone], int]:
    where = BlockedPhone.organization_id == organization_id
    rows = session.scalars(
        select(BlockedPhone).where(where).order_by(BlockedPhone.id).limit(limit).offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(BlockedPhone).where(where)) or 0
    return rows, int(total)


def phones_by_number(
    session: Session, organization_id: str, numbers: Sequence[str]
) -> dict[str, BlockedPhone]:
    rows = session.scalars(
        select(BlockedPhone).where(
            BlockedPhone.organization_id == organization_id, BlockedPhone.phone.in_(numbers)
        )
    )
    return {r.phone: r for r in rows}


def phone(session: Session, organization_id: str, row_id: int) -> BlockedPhone | None:
    row = session.get(BlockedPhone, row_id)
    return row if row is not None and row.organization_id == organization_id else None


def networks(session: Session, organization_id: str) -> Sequence[BlockedNetwork]:
    return session.scalars(
        select(BlockedNetwork)
        .where(BlockedNetwork.organization_id == organization_id)
        .order_by(BlockedNetwork.id)
    ).all()


def network(session: Session, organization_id: str, row_id: int) -> BlockedNetwork | None:
    row = session.get(BlockedNetwork, row_id)
    return row if row is not None and row.organization_id == organization_id else None


def add(session: Session, rows: Sequence[BlockedPhone | BlockedNetwork]) -> None:
    session.add_all(rows)
    session.flush()


def delete(session: Session, row: BlockedPhone | BlockedNetwork) -> None:
    session.delete(row)
    session.flush()


def opt_out_row(
    session: Session, organization_id: str, *, lock: bool = False
) -> OptOutSettings | None:
    stmt = select(OptOutSettings).where(OptOutSettings.organization_id == organization_id)
    return session.scalar(stmt.with_for_update() if lock else stmt)
