"""All SQL of the gateway."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnirelay.gateway.models import Device, GatewayAccount, GatewayMessage
from omnirelay.messaging.models import Message


def account(session: Session, organization_id: str) -> GatewayAccount | None:
    return session.get(GatewayAccount, organization_id)


def account_by_token(session: Session, token_hash: str) -> GatewayAccount | None:
    return session.scalars(
        select(GatewayAccount).where(GatewayAccount.token_hash == token_hash)
    ).one_or_none()


def device_by_token(session: Session, token_hash: str) -> Device | None:
    return session.scalars(select(Device).where(Device.token_hash == token_hash)).one_or_none()


def device_by_number(session: Session, number: str) -> Device | None:
    return session.scalars(select(Device).where(Device.number == number)).one_or_none()


def device(session: Session, organization_id: str, device_id: int) -> Device | None:
    row = session.get(Device, device_id)
    return row if row is not None and row.organization_id == organization_id else None


def device_any(session: Session, device_id: int) -> Device | None:
    """By id alone: for a provider's webhook, which proves itself by its signature."""
    return session.get(Device, device_id)


def device_by_connection(session: Session, connection_id: int) -> Device | None:
    return session.scalars(
        select(Device).where(Device.connection_id == connection_id)
    ).one_or_none()


def lock_device(session: Session, device_id: int) -> Device | None:
    """The device row, locked: quota and OTP changes of one device are serialised."""
    return session.scalars(
        select(Device).where(Device.id == device_id).with_for_update()
    ).one_or_none()


def devices(session: Session, organization_id: str) -> Sequence[Device]:
    return session.scalars(
        select(Device).where(Device.organization_id == organization_id).order_by(Device.id)
    ).all()


def count_free(session: Session, organization_id: str, *, connected: bool = False) -> int:
    query = select(func.count()).where(
        Device.organization_id == organization_id, Device.package == "Free"
    )
    if connected:
        query = query.where(Device.status == "connect")
    return int(session.scalar(query) or 0)


def add(session: Session, row: GatewayAccount | Device | GatewayMessage) -> None:
    session.add(row)
    session.flush()


def delete_device(session: Session, row: Device) -> None:
    session.delete(row)
    session.flush()


def gateway_message(
    session: Session, organization_id: str, gateway_id: int
) -> tuple[GatewayMessage, Message] | None:
    row = session.execute(
        select(GatewayMessage, Message)
        .join(Message, Message.id == GatewayMessage.message_id)
        .where(GatewayMessage.id == gateway_id, GatewayMessage.organization_id == organization_id)
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


def gateway_id_of(session: Session, message_id: str) -> GatewayMessage | None:
    return session.scalars(
        select(GatewayMessage).where(GatewayMessage.message_id == message_id)
    ).one_or_none()


def pending_of_device(session: Session, device_id: int) -> Sequence[str]:
    """Ids of the device's messages not yet handed to the device (still cancellable)."""
    return session.scalars(
        select(Message.id)
        .join(GatewayMessage, GatewayMessage.message_id == Message.id)
        .where(
            GatewayMessage.device_id == device_id,
            Message.final_at.is_(None),
            Message.status == "accepted",
        )
    ).all()


def file_in_use(session: Session, name: str) -> bool:
    """Whether a message that is not final yet carries the uploaded file ``name``."""
    found = session.scalar(
        select(GatewayMessage.id)
        .join(Message, Message.id == GatewayMessage.message_id)
        .where(GatewayMessage.file == name, Message.final_at.is_(None))
        .limit(1)
    )
    return found is not None
