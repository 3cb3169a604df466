"""Tenancy rules of seed 000: organizations, users, subscription keys, access tokens,
workspace tokens. Services never commit; secrets are returned once and stored hashed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.errors import Conflict, Forbidden, InvalidInput, NotFound
from omnirelay.security import (
    display_prefix,
    hash_secret,
    new_subscription_key,
    new_token,
)
from omnirelay.tenancy import cache
from omnirelay.tenancy import repository as repo
from omnirelay.tenancy.models import (
    ROLES,
    SLOTS,
    AccessToken,
    ApiToken,
    Organization,
    SubscriptionKey,
    User,
    Workspace,
    WorkspaceOrganization,
    WorkspaceToken,
)

ACCESS_TOKEN_PREFIX = "ora"
WORKSPACE_TOKEN_PREFIX = "orw"


@dataclass(frozen=True)
class NewOrganization:
    organization: Organization
    subscription_keys: dict[str, str]  # slot -> key, shown once
    admin: User | None
    access_token: str | None  # the admin's, shown once
    api_token: str  # for /v3 and /user, shown once
    credentials: dict[str, str] = field(default_factory=dict)  # other surfaces', shown once


def create_organization(
    session: Session,
    name: str,
    *,
    admin_email: str | None = None,
    admin_name: str | None = None,
    admin_external_id: str | None = None,
    created_via: str,
    with_access_token: bool = True,
    workspace_id: str | None = None,
) -> NewOrganization:
    org = Organization(name=name)
    repo.add(session, org)
    keys = {slot: _set_subscription_key(session, org.id, slot) for slot in SLOTS}
    admin: User | None = None
    token: str | None = None
    if admin_email:
        admin = _add_user(
            session,
            org.id,
            email=admin_email,
            name=admin_name or admin_email,
            role="admin",
            external_id=admin_external_id,
            created_via=created_via,
        )
        if with_access_token:
            token = _issue_access_token(session, admin)
    if workspace_id:
        repo.add(session, WorkspaceOrganization(workspace_id=workspace_id, organization_id=org.id))
    from omnirelay import onboarding  # late: the domains it sets up import tenancy's models

    credentials = onboarding.set_up(session, org.id)
    api_token = regenerate_api_token(session, org.id)
    return NewOrganization(org, keys, admin, token, api_token, credentials)


def create_user(
    session: Session,
    organization_id: str,
    *,
    email: str,
    name: str,
    role: str,
    external_id: str | None,
) -> User:
    """A user created through the API: the only kind that carries an externalId."""
    return _add_user(
        session,
        organization_id,
        email=email,
        name=name,
        role=role,
        external_id=external_id,
        created_via="api",
    )


def _add_user(
    session: Session,
    organization_id: str,
    *,
    email: str,
    name: str,
    role: str,
    external_id: str | None,
    created_via: str,
) -> User:
    if role not in ROLES:
        raise InvalidInput("invalid_role", f"role must be one of {', '.join(ROLES)}", field="role")
    if repo.get_user_by_email(session, organization_id, email):
        raise Conflict("email_taken", f"a user with email {email!r} already exists", field="email")
    if external_id is not None and repo.get_user_by_external_id(
        session, organization_id, external_id
    ):
        raise Conflict(
            "external_id_taken",
            f"a user with externalId {external_id!r} already exists",
            field="externalId",
        )
    user = User(
        organization_id=organization_id,
        email=email,
        name=name,
        role=role,
        external_id=external_id,
        created_via=created_via,
        is_active=True,
    )
    repo.add(session, user)
    return user


def get_user(session: Session, organization_id: str, user_id: str) -> User:
    user = repo.get_user(session, organization_id, user_id)
    if user is None:
        raise NotFound("user_not_found", f"user {user_id!r} not found")
    return user


def list_users(
    session: Session, organization_id: str, *, limit: int, offset: int
) -> tuple[list[User], int]:
    return repo.list_users(session, organization_id, limit=limit, offset=offset)


def change_role(session: Session, organization_id: str, user_id: str, role: str) -> User:
    if role not in ROLES:
        raise InvalidInput("invalid_role", f"role must be one of {', '.join(ROLES)}", field="role")
    user = get_user(session, organization_id, user_id)
    if user.role == "admin" and role != "admin":
        _keep_one_admin(session, user)
    user.role = role
    session.flush()
    return user


def deactivate_user(session: Session, organization_id: str, user_id: str) -> User:
    user = get_user(session, organization_id, user_id)
    if not user.is_active:
        return user
    if user.role == "admin":
        _keep_one_admin(session, user)
    user.is_active = False
    user.deactivated_at = utcnow()
    session.flush()
    return user


def _keep_one_admin(session: Session, user: User) -> None:
    if user.is_active and repo.count_active_admins(session, user.organization_id) <= 1:
        raise Conflict("last_admin", "an organization must keep at least one active admin")


# --- subscription keys ---------------------------------------------------------


def _set_subscription_key(session: Session, organization_id: str, slot: str) -> str:
    key = new_subscription_key()
    row = repo.get_subscription_key(session, organization_id, slot)
    if row is None:
        row = SubscriptionKey(organization_id=organization_id, slot=slot)
        session.add(row)
    row.key_hash = hash_secret(key)
    row.key_prefix = display_prefix(key)
    row.created_at = utcnow()
    session.flush()
    return key


def regenerate_subscription_key(session: Session, organization_id: str, slot: str) -> str:
    """Replace one key; the other keeps working (seed 000: change keys without downtime)."""
    if slot not in SLOTS:
        raise NotFound("invalid_slot", f"subscription key slot must be one of {', '.join(SLOTS)}")
    return _set_subscription_key(session, organization_id, slot)


def subscription_keys(session: Session, organization_id: str) -> list[SubscriptionKey]:
    return repo.get_subscription_keys(session, organization_id)


# --- access tokens -------------------------------------------------------------


def _issue_access_token(session: Session, user: User) -> str:
    token = new_token(ACCESS_TOKEN_PREFIX)
    row = repo.get_access_token_of_user(session, user.id)
    if row is None:
        row = AccessToken(organization_id=user.organization_id, user_id=user.id)
        session.add(row)
    row.token_hash = hash_secret(token)
    row.token_prefix = display_prefix(token)
    row.created_at = utcnow()
    row.last_used_at = None
    session.flush()
    return token


def generate_access_token(session: Session, organization_id: str, user_id: str) -> str:
    user = _active_user(session, organization_id, user_id)
    if repo.get_access_token_of_user(session, user.id):
        raise Conflict(
            "token_exists",
            "this user already has an access token; regenerate it to get a new one",
        )
    return _issue_access_token(session, user)


def regenerate_access_token(session: Session, organization_id: str, user_id: str) -> str:
    user = _active_user(session, organization_id, user_id)
    if repo.get_access_token_of_user(session, user.id) is None:
        raise NotFound("token_not_found", "this user has no access token yet")
    return _issue_access_token(session, user)


def view_access_token(session: Session, organization_id: str, user_id: str) -> AccessToken:
    user = get_user(session, organization_id, user_id)
    row = repo.get_access_token_of_user(session, user.id)
    if row is None:
        raise NotFound("token_not_found", "this user has no access token yet")
    return row


def _active_user(session: Session, organization_id: str, user_id: str) -> User:
    user = get_user(session, organization_id, user_id)
    if not user.is_active:
        raise Forbidden("user_deactivated", "the user is deactivated")
    return user


# --- API tokens (/v3, /user) -------------------------------------------------------


def regenerate_api_token(session: Session, organization_id: str) -> str:
    """Revoke the organization's API tokens and issue a new one. The token is a UUID,
    the shape seed 001/004 clients send after ``Authorization: Token``."""
    now = utcnow()
    for row in repo.active_api_tokens(session, organization_id):
        row.revoked_at = now
    cache.changed(session)  # processes stop honouring the old token (tenancy/cache.py)
    token = str(uuid.uuid4())
    repo.add(
        session,
        ApiToken(
            organization_id=organization_id,
            token_hash=hash_secret(token),
            token_prefix=display_prefix(token),
        ),
    )
    return token


def api_tokens(session: Session, organization_id: str) -> list[ApiToken]:
    return repo.active_api_tokens(session, organization_id)


# --- workspaces ----------------------------------------------------------------


@dataclass(frozen=True)
class NewWorkspace:
    workspace: Workspace
    token: str


def create_workspace(session: Session, name: str, organization_ids: list[str]) -> NewWorkspace:
    """Operators make workspaces (seed 000: 'by support ticket'), through the CLI."""
    ws = Workspace(name=name)
    repo.add(session, ws)
    for org_id in organization_ids:
        if repo.get_organization(session, org_id) is None:
            raise NotFound("organization_not_found", f"organization {org_id!r} not found")
        repo.add(session, WorkspaceOrganization(workspace_id=ws.id, organization_id=org_id))
    token = new_token(WORKSPACE_TOKEN_PREFIX)
    repo.add(
        session,
        WorkspaceToken(
            workspace_id=ws.id, token_hash=hash_secret(token), token_prefix=display_prefix(token)
        ),
    )
    return NewWorkspace(ws, token)


def workspace_organizations(session: Session, workspace_id: str) -> list[Organization]:
    return repo.list_workspace_organizations(session, workspace_id)


def get_organization(session: Session, organization_id: str) -> Organization:
    org = repo.get_organization(session, organization_id)
    if org is None:
        raise NotFound("organization_not_found", f"organization {organization_id!r} not found")
    return org
