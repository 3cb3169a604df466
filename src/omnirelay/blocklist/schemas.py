"""Admin API shapes of the block lists (`/api/blocklist`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class PhonesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phones: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=1000, examples=[["+7 916 123-45-67"]]
    )
    reason: str | None = Field(default=None, max_length=500)


class PhoneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str = Field(description="E.164 digits, no '+'")
    reason: str | None
    via: str | None = Field(
        default=None, description="the channel of the end user's opt-out; null: added here"
    )
    created_at: datetime


class PhoneList(BaseModel):
    items: list[PhoneOut]
    total: int


class NetworksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    networks: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=1000, examples=[["203.0.113.7", "198.51.100.0/24"]]
    )
    reason: str | None = Field(default=None, max_length=500)


class NetworkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    network: str = Field(description="CIDR; a single address is /32 (IPv6: /128)")
    reason: str | None
    created_at: datetime


class NetworkList(BaseModel):
    items: list[NetworkOut]


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    stop_words: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=20, examples=[["STOP", "UNSUBSCRIBE", "СТОП"]]
    )
    start_words: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=20, examples=[["START"]]
    )


class OptOutOut(BaseModel):
    enabled: bool
    stop_words: list[str]
    start_words: list[str]
