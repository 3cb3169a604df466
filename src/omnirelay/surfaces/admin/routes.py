"""Admin API (seed 000): identity, organizations, users, access tokens, subscription keys.

Each handler is the edge: it opens one transaction and calls the tenancy service.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from omnirelay.errors import Forbidden
from omnirelay.surfaces.admin.deps import Caller, Ctx, Limit, Offset
from omnirelay.tenancy import service
from omnirelay.tenancy.auth import require_admin, require_user
from omnirelay.tenancy.schemas import (
    AccessTokenInfo,
    AccessTokenSecret,
    MeOut,
    OrganizationCreate,
    OrganizationCreated,
    OrganizationOut,
    OrganizationPage,
    SubscriptionKeyInfo,
    SubscriptionKeyRegenerated,
    SubscriptionKeysSecret,
    SubscriptionOut,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)

router = APIRouter()


@router.get("/me", response_model=MeOut, tags=["identity"])
def me(ctx: Ctx, caller: Caller) -> MeOut:
    """The effective identity of the call, after impersonation."""
    with ctx.db.transaction() as session:
        org = service.get_organization(session, caller.organization_id)
    user = caller.user
    return MeOut(
        user=UserOut.model_validate(user) if user else None,
        external_id=user.external_id if user else None,
        organization=OrganizationOut.model_validate(org),
        role=user.role if user else None,
        impersonated=caller.impersonated,
        impersonator_user_id=caller.token_user_id if caller.impersonated else None,
        workspace_id=caller.workspace_id,
    )


@router.get("/organization", response_model=OrganizationOut, tags=["organizations"])
def current_organization(ctx: Ctx, caller: Caller) -> OrganizationOut:
    require_user(caller)
    with ctx.db.transaction() as session:
        return OrganizationOut.model_validate(
            service.get_organization(session, caller.organization_id)
        )


@router.get("/organizations", response_model=OrganizationPage, tags=["organizations"])
def list_organizations(ctx: Ctx, caller: Caller) -> OrganizationPage:
    """With a workspace token: every organization of the workspace; otherwise the caller's."""
    with ctx.db.transaction() as session:
        if caller.workspace_id:
            orgs = service.workspace_organizations(session, caller.workspace_id)
        else:
            orgs = [service.get_organization(session, caller.organization_id)]
    items = [OrganizationOut.model_validate(o) for o in orgs]
    return OrganizationPage(items=items, total=len(items), limit=len(items), offset=0)


@router.post(
    "/organizations", response_model=OrganizationCreated, status_code=201, tags=["organizations"]
)
def create_organization(ctx: Ctx, caller: Caller, body: OrganizationCreate) -> OrganizationCreated:
    """Only a workspace access token may create organizations (seed 000); the new one joins
    the workspace. Its subscription keys are shown here once."""
    if caller.workspace_id is None:
        raise Forbidden(
            "workspace_token_required", "Creating an organization needs a workspace access token."
        )
    with ctx.db.transaction() as session:
        created = service.create_organization(
            session,
            body.name,
            admin_email=body.admin.email if body.admin else None,
            admin_name=body.admin.name if body.admin else None,
            admin_external_id=body.admin.external_id if body.admin else None,
            created_via="api",
            with_access_token=False,
            workspace_id=caller.workspace_id,
        )
    return OrganizationCreated(
        organization=OrganizationOut.model_validate(created.organization),
        subscription_keys=SubscriptionKeysSecret(**created.subscription_keys),
        admin=UserOut.model_validate(created.admin) if created.admin else None,
    )


@router.get("/users", response_model=UserPage, tags=["users"])
def list_users(ctx: Ctx, caller: Caller, limit: Limit = 50, offset: Offset = 0) -> UserPage:
    require_user(caller)
    with ctx.db.transaction() as session:
        users, total = service.list_users(
            session, caller.organization_id, limit=limit, offset=offset
        )
    return UserPage(
        items=[UserOut.model_validate(u) for u in users], total=total, limit=limit, offset=offset
    )


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
def create_user(ctx: Ctx, caller: Caller, body: UserCreate) -> UserOut:
    require_admin(caller)
    with ctx.db.transaction() as session:
        user = service.create_user(
            session,
            caller.organization_id,
            email=body.email,
            name=body.name,
            role=body.role,
            external_id=body.external_id,
        )
        return UserOut.model_validate(user)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(ctx: Ctx, caller: Caller, user_id: str) -> UserOut:
    require_user(caller)
    with ctx.db.transaction() as session:
        return UserOut.model_validate(service.get_user(session, caller.organization_id, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
def update_user(ctx: Ctx, caller: Caller, user_id: str, body: UserUpdate) -> UserOut:
    require_admin(caller)
    with ctx.db.transaction() as session:
        user = service.change_role(session, caller.organization_id, user_id, body.role)
        return UserOut.model_validate(user)


@router.post("/users/{user_id}/deactivate", response_model=UserOut, tags=["users"])
def deactivate_user(ctx: Ctx, caller: Caller, user_id: str) -> UserOut:
    require_admin(caller)
    with ctx.db.transaction() as session:
        return UserOut.model_validate(
            service.deactivate_user(session, caller.organization_id, user_id)
        )


@router.post(
    "/users/{user_id}/access-token",
    response_model=AccessTokenSecret,
    status_code=201,
    tags=["access tokens"],
)
def generate_access_token(ctx: Ctx, caller: Caller, user_id: str) -> AccessTokenSecret:
    """One token per user; the token is shown in this answer only."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        token = service.generate_access_token(session, caller.organization_id, user_id)
        info = service.view_access_token(session, caller.organization_id, user_id)
    return AccessTokenSecret(token=token, **AccessTokenInfo.model_validate(info).model_dump())


@router.post(
    "/users/{user_id}/access-token/regenerate",
    response_model=AccessTokenSecret,
    tags=["access tokens"],
)
def regenerate_access_token(ctx: Ctx, caller: Caller, user_id: str) -> AccessTokenSecret:
    """Replaces the user's token; the old one stops working at once."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        token = service.regenerate_access_token(session, caller.organization_id, user_id)
        info = service.view_access_token(session, caller.organization_id, user_id)
    return AccessTokenSecret(token=token, **AccessTokenInfo.model_validate(info).model_dump())


@router.get("/users/{user_id}/access-token", response_model=AccessTokenInfo, tags=["access tokens"])
def view_access_token(ctx: Ctx, caller: Caller, user_id: str) -> AccessTokenInfo:
    """Tokens are stored hashed: this shows the prefix and dates, never the token itself."""
    user = require_user(caller)
    if user.id != user_id:
        require_admin(caller)
    with ctx.db.transaction() as session:
        return AccessTokenInfo.model_validate(
            service.view_access_token(session, caller.organization_id, user_id)
        )


@router.get("/subscription", response_model=SubscriptionOut, tags=["subscription"])
def subscription(ctx: Ctx, caller: Caller) -> SubscriptionOut:
    require_admin(caller)
    with ctx.db.transaction() as session:
        keys = service.subscription_keys(session, caller.organization_id)
        org = service.get_organization(session, caller.organization_id)
    return SubscriptionOut(
        organization_id=caller.organization_id,
        keys=[SubscriptionKeyInfo.model_validate(k) for k in keys],
        rate_limit_requests=org.rate_limit_requests or ctx.settings.rate_limit_requests,
        rate_limit_window_seconds=ctx.settings.rate_limit_window_seconds,
    )


@router.post(
    "/subscription/keys/{slot}/regenerate",
    response_model=SubscriptionKeyRegenerated,
    tags=["subscription"],
)
def regenerate_subscription_key(
    ctx: Ctx, caller: Caller, slot: Literal["primary", "secondary"]
) -> SubscriptionKeyRegenerated:
    """Regenerates one key; the other keeps working, so clients switch without downtime."""
    require_admin(caller)
    with ctx.db.transaction() as session:
        key = service.regenerate_subscription_key(session, caller.organization_id, slot)
    return SubscriptionKeyRegenerated(slot=slot, key=key)
