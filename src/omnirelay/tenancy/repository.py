"""All SQL of the tenancy domain. Every lookup of an object by id is scoped by organization."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnirelay.tenancy.models import (
    AccessToken,
    ApiToken,
    Organization,
    SubscriptionKey,
    User,
    Workspace,
    WorkspaceOrganization,
    WorkspaceToken,
)


def add(session: Session, obj: object) -> None:
    session.add(obj)
    session.flush()


def get_organization(session: Session, organization_id: str) -> Organization | None:
    return session.get(Organization, organization_id)


def get_user(session: Session, organization_id: str, user_id: str) -> User | None:
    return session.scalar(
        select(User).where(User.organization_id == organization_id, User.id == user_id)
    )


def get_user_by_external_id(
    session: Session, organization_id: str, external_id: str
) -> User | None:
    return session.scalar(
        select(User).where(User.organization_id == organization_id, User.external_id == external_id)
    )


def get_user_by_email(session: Session, organization_id: str, email: str) -> User | None:
    return session.scalar(
        select(User).where(
            User.organization_id == organization_id, func.lower(User.email) == email.lower()
        )
    )


def list_users(
    session: Session, organization_id: str, *, limit: int, offset: int
) -> tuple[list[User], int]:
    where = User.organization_id == organization_id
    total = session.scalar(select(func.count()).select_from(User).where(where)) or 0
    rows = session.scalars(
        select(User).where(where).order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return list(rows), total


def count_active_admins(session: Session, organization_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.organization_id == organization_id,
                User.role == "admin",
                User.is_active.is_(True),
            )
        )
        or 0
    )


def get_subscription_keys(session: Session, organization_id: str) -> list[SubscriptionKey]:
    return list(
        session.scalars(
            select(SubscriptionKey)
            .where(SubscriptionKey.organization_id == organization_id)
            .order_by(SubscriptionKey.slot)
        )
    )


def get_subscription_key(
    session: Session, organization_id: str, slot: str
) -> SubscriptionKey | None:
    return session.get(SubscriptionKey, (organization_id, slot))


def find_subscription_key(session: Session, key_hash: str) -> SubscriptionKey | None:
    return session.scalar(select(SubscriptionKey).where(SubscriptionKey.key_hash == key_hash))


def get_access_token_of_user(session: Session, user_id: str) -> AccessToken | None:
    return session.scalar(select(AccessToken).where(AccessToken.user_id == user_id))


def find_access_token(session: Session, token_hash: str) -> AccessToken | None:
    return session.scalar(select(AccessToken).where(AccessToken.token_hash == token_hash))


def find_workspace_token(session: Session, token_hash: str) -> WorkspaceToken | None:
    return session.scalar(select(WorkspaceToken).where(WorkspaceToken.token_hash == token_hash))


def get_workspace(session: Session, workspace_id: str) -> Workspace | None:
    return session.get(Workspace, workspace_id)


def workspace_has_organization(session: Session, workspace_id: str, organization_id: str) -> bool:
    return session.get(WorkspaceOrganization, (workspace_id, organization_id)) is not None


def list_workspace_organizations(session: Session, workspace_id: str) -> list[Organization]:
    return list(
        session.scalars(
            select(Organization)
            .join(WorkspaceOrganization, WorkspaceOrganization.organization_id == Organization.id)
            .where(WorkspaceOrganization.workspace_id == workspace_id)
            .order_by(Organization.created_at, Organization.id)
        )
    )


def active_api_tokens(session: Session, organization_id: str) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(
                ApiToken.organization_id == organization_id, ApiToken.revoked_at.is_(None)
            )
        )
    )


def find_api_token(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    )
