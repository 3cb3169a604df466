"""Gateway accounts and devices, and the gateway's numeric ids of the messages it sends.

A device is bound to a channel connection (channel ``whatsapp``) whose provider is the
device's driver; its messages go through the notifications pipeline like any other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnirelay.db import Base, UTCDateTime, utcnow


class GatewayAccount(Base):
    """The account token of an organization (hashed), and the WhatsApp number its OTP
    codes are sent to."""

    __tablename__ = "gateway_accounts"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(8))
    otp_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Device(Base):
    __tablename__ = "gateway_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[int] = mapped_column(ForeignKey("channel_connections.id"))
    number: Mapped[str] = mapped_column(String(15), unique=True)  # as given: 8..15 digits
    name: Mapped[str] = mapped_column(String(30))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(8))
    driver: Mapped[str] = mapped_column(String(32))  # the connection's provider
    status: Mapped[str] = mapped_column(String(16), default="disconnect")  # connect|disconnect
    package: Mapped[str] = mapped_column(String(32), default="Free")
    quota: Mapped[int] = mapped_column(Integer, default=1000)  # messages left
    messages: Mapped[int] = mapped_column(Integer, default=0)  # messages requested
    expired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    autoread: Mapped[bool] = mapped_column(Boolean, default=False)
    personal: Mapped[bool] = mapped_column(Boolean, default=False)
    group: Mapped[bool] = mapped_column(Boolean, default=False)
    quick: Mapped[bool] = mapped_column(Boolean, default=False)
    resend: Mapped[bool] = mapped_column(Boolean, default=False)
    target: Mapped[str | None] = mapped_column(String(20), nullable=True)
    country_code: Mapped[str] = mapped_column(String(4), default="62")
    webhook: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_connect: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_chaining: Mapped[str | None] = mapped_column(Text, nullable=True)
    pairing: Mapped[str | None] = mapped_column(String(16), nullable=True)  # qr|code, pending
    # Delete-device OTP: the code's digest, when it was asked for, wrong tries, lock.
    otp_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    otp_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    otp_failures: Mapped[int] = mapped_column(Integer, default=0)
    otp_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The latest code's message: woken with the held messages when the device connects.
    otp_message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GatewayMessage(Base):
    """One target of a /send: the numeric id the gateway answers with, the request it came
    in, and the pipeline message that carries it."""

    __tablename__ = "gateway_messages"
    # Ids are answered to clients, who keep them: on SQLite an INTEGER key without
    # AUTOINCREMENT hands a deleted row's id to the next row (PostgreSQL's sequence never
    # goes back).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int] = mapped_column(
        ForeignKey("gateway_devices.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[int] = mapped_column(Integer, index=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), unique=True)
    target: Mapped[str] = mapped_column(String(40))
    # The name of the uploaded file it carries (under media_dir; unique: uuid-prefixed),
    # kept until every message that carries it is final.
    file: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
