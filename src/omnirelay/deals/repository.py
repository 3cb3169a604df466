"""All SQL of deals. Every query names the organization."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from omnirelay.deals.models import Deal, DealAttribute, DealProduct


def move_to_contact(session: Session, from_contact: str, to_contact: str) -> None:
    """A merged contact's deals go to the contact that was kept."""
    session.execute(
        update(Deal).where(Deal.contact_id == from_contact).values(contact_id=to_contact)
    )


def add_attribute(session: Session, row: DealAttribute) -> DealAttribute:
    session.add(row)
    session.flush()
    return row


def attributes(session: Session, organization_id: str) -> list[DealAttribute]:
    return list(
        session.scalars(
            select(DealAttribute)
            .where(DealAttribute.organization_id == organization_id)
            .order_by(DealAttribute.created_at, DealAttribute.id)
        )
    )


def attribute(session: Session, organization_id: str, attribute_id: str) -> DealAttribute | None:
    return session.scalar(
        select(DealAttribute).where(
            DealAttribute.organization_id == organization_id, DealAttribute.id == attribute_id
        )
    )


def attribute_named(
    session: Session, organization_id: str, entity: str, name: str
) -> DealAttribute | None:
    return session.scalar(
        select(DealAttribute).where(
            DealAttribute.organization_id == organization_id,
            DealAttribute.entity == entity,
            DealAttribute.name == name,
        )
    )


def delete_attribute(session: Session, row: DealAttribute) -> None:
    session.execute(delete(DealAttribute).where(DealAttribute.id == row.id))


def deal(
    session: Session, organization_id: str, deal_id: str, *, lock: bool = False
) -> Deal | None:
    stmt = select(Deal).where(Deal.organization_id == organization_id, Deal.id == deal_id)
    return session.scalar(stmt.with_for_update() if lock else stmt)


def add(session: Session, row: Deal | DealProduct) -> None:
    session.add(row)
    session.flush()


def products(session: Session, deal_ids: Sequence[str]) -> list[DealProduct]:
    if not deal_ids:
        return []
    return list(
        session.scalars(
            select(DealProduct)
            .where(DealProduct.deal_id.in_(deal_ids))
            .order_by(DealProduct.position, DealProduct.id)
        )
    )


def delete_products(session: Session, ids: Sequence[str]) -> None:
    if ids:
        session.execute(delete(DealProduct).where(DealProduct.id.in_(ids)))


def delete_deal(session: Session, row: Deal) -> None:
    session.execute(delete(DealProduct).where(DealProduct.deal_id == row.id))
    session.execute(delete(Deal).where(Deal.id == row.id))


def page(
    session: Session,
    organization_id: str,
    where: ColumnElement[bool],
    order: Sequence[Any],
    offset: int,
    limit: int | None,
) -> list[Deal]:
    stmt = (
        select(Deal)
        .where(Deal.organization_id == organization_id, where)
        .order_by(*order)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def count(session: Session, organization_id: str, where: ColumnElement[bool]) -> int:
    stmt = (
        select(func.count()).select_from(Deal).where(Deal.organization_id == organization_id, where)
    )
    return int(session.scalar(stmt) or 0)
