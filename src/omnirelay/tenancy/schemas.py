"""Wire models of the admin API (seed 000 style: camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Role = Literal["admin", "member"]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )


class UserOut(Wire):
    id: str
    email: str
    name: str
    role: Role
    external_id: str | None
    created_via: str
    is_active: bool
    created_at: datetime


class UserCreate(Wire):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: Role = "member"
    external_id: str | None = Field(default=None, min_length=1, max_length=200)


class UserUpdate(Wire):
    role: Role


class Page(Wire):
    total: int
    limit: int
    offset: int


class UserPage(Page):
    items: list[UserOut]


class OrganizationOut(Wire):
    id: str
    name: str
    created_at: datetime


class OrganizationPage(Page):
    items: list[OrganizationOut]


class MeOut(Wire):
    user: UserOut | None
    external_id: str | None
    organization: OrganizationOut
    role: Role | None
    impersonated: bool
    impersonator_user_id: str | None
    workspace_id: str | None


class AdminCreate(Wire):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=320)
    name: str = Field(min_length=1, max_length=200)
    external_id: str = Field(min_length=1, max_length=200)


class OrganizationCreate(Wire):
    name: str = Field(min_length=1, max_length=200)
    admin: AdminCreate | None = None


class SubscriptionKeysSecret(Wire):
    primary: str
    secondary: str


class OrganizationCreated(Wire):
    organization: OrganizationOut
    subscription_keys: SubscriptionKeysSecret
    admin: UserOut | None


class SubscriptionKeyInfo(Wire):
    slot: Literal["primary", "secondary"]
    key_prefix: str
    created_at: datetime


class SubscriptionOut(Wire):
    organization_id: str
    keys: list[SubscriptionKeyInfo]
    rate_limit_requests: int
    rate_limit_window_seconds: int


class SubscriptionKeyRegenerated(Wire):
    slot: Literal["primary", "secondary"]
    key: str


class AccessTokenInfo(Wire):
    user_id: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None


class AccessTokenSecret(AccessTokenInfo):
    token: str
