"""Who is calling: the seed 000 credential check, shared by every surface that uses it.

Order of checks: subscription key -> access token (or workspace token) -> impersonation.
The subscription key names the organization; the token must belong to it (or, for a
workspace token, the workspace must include it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from omnirelay.db import utcnow
from omnirelay.errors import Forbidden, InvalidInput, Unauthorized
from omnirelay.security import hash_secret
from omnirelay.tenancy import repository as repo
from omnirelay.tenancy.cache import invalid_token, parse_token
from omnirelay.tenancy.models import User


@dataclass(frozen=True)
class Identity:
    organization_id: str
    user: User | None  # the effective user; None only for a workspace token without impersonation
    token_user_id: str | None  # the access token's own user (the impersonator when impersonating)
    workspace_id: str | None
    impersonated: bool

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.role == "admin"


def find_subscription(session: Session, subscription_key: str | None) -> str:
    """The organization id that a subscription key belongs to."""
    if not subscription_key:
        raise Unauthorized(
            "missing_subscription_key",
            "Access denied: missing subscription key. "
            "Send it in the Ocp-Apim-Subscription-Key header.",
        )
    row = repo.find_subscription_key(session, hash_secret(subscription_key.strip()))
    if row is None:
        raise Unauthorized(
            "invalid_subscription_key",
            "Access denied: invalid subscription key. Make sure it is an active key of your "
            "subscription (a regenerated key stops working at once).",
        )
    return row.organization_id


LAST_USED_EVERY = timedelta(minutes=1)  # how fresh an access token's lastUsedAt is


def authenticate(
    session: Session,
    organization_id: str,
    authorization: str | None,
    impersonated_external_id: str | None,
) -> Identity:
    token = _bare_token(authorization)
    digest = hash_secret(token)
    access = repo.find_access_token(session, digest)
    if access is not None:
        if access.organization_id != organization_id:
            raise Unauthorized(
                "token_organization_mismatch",
                "The access token does not belong to the organization of the subscription key.",
            )
        user = repo.get_user(session, organization_id, access.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("user_deactivated", "The access token's user is deactivated.")
        now = utcnow()
        # Coarse on purpose: a token in heavy use would otherwise write its row (and
        # queue its requests on that row's lock) on every call.
        if access.last_used_at is None or now - access.last_used_at >= LAST_USED_EVERY:
            access.last_used_at = now
        if impersonated_external_id is None:
            return Identity(organization_id, user, user.id, None, False)
        if user.role != "admin":
            raise Forbidden(
                "impersonation_not_allowed",
                "Only an organization admin may impersonate: the access token's user is not "
                "an admin.",
            )
        target = _impersonated(session, organization_id, impersonated_external_id)
        return Identity(organization_id, target, user.id, None, True)

    ws_token = repo.find_workspace_token(session, digest)
    if ws_token is None or ws_token.revoked_at is not None:
        raise Unauthorized(
            "invalid_access_token", "Access denied: invalid or revoked access token."
        )
    if not repo.workspace_has_organization(session, ws_token.workspace_id, organization_id):
        raise Forbidden(
            "organization_not_in_workspace",
            "The workspace access token does not cover the organization of the subscription key.",
        )
    if impersonated_external_id is None:
        return Identity(organization_id, None, None, ws_token.workspace_id, False)
    target = _impersonated(session, organization_id, impersonated_external_id)
    return Identity(organization_id, target, None, ws_token.workspace_id, True)


def _bare_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise Unauthorized(
            "missing_access_token",
            "Access denied: missing access token. Send it in the Authorization header.",
        )
    value = authorization.strip()
    # The seed sends the bare token; accept a "Bearer " scheme too, as HTTP clients add it.
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value


def _impersonated(session: Session, organization_id: str, external_id: str) -> User:
    external_id = external_id.strip()
    if not external_id:
        raise InvalidInput(
            "invalid_impersonation_header",
            "The impersonatedUserExternalId header is empty.",
            field="impersonatedUserExternalId",
        )
    # externalId is only ever set on users created through the API, so this lookup
    # also enforces "only API-created users can be impersonated".
    target = repo.get_user_by_external_id(session, organization_id, external_id)
    if target is None:
        raise Forbidden(
            "impersonated_user_not_found",
            f"No API-created user with externalId {external_id!r} in this organization.",
        )
    if not target.is_active:
        raise Forbidden("impersonated_user_deactivated", "The impersonated user is deactivated.")
    return target


def require_user(identity: Identity) -> User:
    """Project-scoped calls need a user: with a workspace token, impersonation is mandatory."""
    if identity.user is None:
        raise Forbidden(
            "impersonation_required",
            "Calls made with a workspace access token must impersonate a user "
            "(impersonatedUserExternalId header).",
        )
    return identity.user


def require_admin(identity: Identity) -> User:
    user = require_user(identity)
    if user.role != "admin":
        raise Forbidden("admin_required", "This action needs the organization admin role.")
    return user


def authenticate_api_token(session: Session, authorization: str | None) -> str:
    """``Authorization: Token <key>`` of the /v3 and /user surfaces -> organization id.
    (Requests go through the process's cache, tenancy/cache.py; this is its uncached form.)"""
    row = repo.find_api_token(session, hash_secret(parse_token(authorization)))
    if row is None:
        raise invalid_token()
    return row.organization_id
