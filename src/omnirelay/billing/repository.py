"""SQL of balances and prices. Debits are one conditional UPDATE: never below zero."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omnirelay.billing.models import Balance, Price
from omnirelay.db import utcnow


def get_balance(session: Session, organization_id: str) -> Balance | None:
    return session.get(Balance, organization_id)


def add_balance(session: Session, row: Balance) -> None:
    session.add(row)
    session.flush()


def debit(session: Session, organization_id: str, amount: int) -> bool:
    """Take ``amount`` if the balance covers it; False (and nothing changed) otherwise."""
    result = session.execute(
        update(Balance)
        .where(Balance.organization_id == organization_id, Balance.amount >= amount)
        .values(amount=Balance.amount - amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def credit(session: Session, organization_id: str, amount: int) -> None:
    session.execute(
        update(Balance)
        .where(Balance.organization_id == organization_id)
        .values(amount=Balance.amount + amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def prices(session: Session, organization_id: str) -> Sequence[Price]:
    return session.scalars(select(Price).where(Price.organization_id == organization_id)).all()


def set_price(session: Session, organization_id: str, channel: str, amount: int) -> None:
    row = session.get(Price, (organization_id, channel))
    if row is None:
        session.add(Price(organization_id=organization_id, channel=channel, amount=amount))
    else:
        row.amount = amount
    session.flush()


def lock_balance(session: Session, organization_id: str) -> Balance | None:
    """The balance row, locked until the transaction ends (SQLite's write lock already is)."""
    return session.scalars(
        select(Balance).where(Balance.organization_id == organization_id).with_for_update()
    ).first()
