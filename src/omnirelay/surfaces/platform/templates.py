"""Templates of the platform API (seed 004): /user/template2/*. The same templates as
/v3/template/* (ADR 27), by number, with per-channel entries, moderation and groups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnirelay.connections.designations import NAMES
from omnirelay.surfaces.platform.contacts import Success
from omnirelay.surfaces.platform.deps import Ctx, OrgId
from omnirelay.templates import groups
from omnirelay.templates import platform as templates
from omnirelay.templates.models import Template, TemplateChannel, TemplateGroup
from omnirelay.templates.text import regexp_text

router = APIRouter(prefix="/template2", tags=["templates"])
MAX_TEXT = 10_000
MAX_BUTTONS = 10
# Ids are numbers; a JavaScript client's safe integers bound them (and keep them within a
# BIGINT, so no id reaches the database as an error).
Id = Annotated[int, Field(ge=1, le=2**53)]
Designation = Annotated[
    str,
    Field(min_length=1, max_length=32, description="a channel designation: " + ", ".join(NAMES)),
]


def timestamp(moment: datetime) -> str:
    """ "2022-03-09T00:00:00.000Z", as the seed writes them."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- bodies ---------------------------------------------------------------------------


class TemplateButton(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str | None = Field(default=None, max_length=32)
    text: str | None = Field(default=None, max_length=200)
    link: str | None = Field(default=None, max_length=2000)


class TemplateKeyboard(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inline: bool = True
    buttons: list[TemplateButton] | None = Field(default=None, max_length=MAX_BUTTONS)


class TemplateChannelIn(BaseModel):
    """A channel entry: the designation and what the template is there."""

    model_config = ConfigDict(extra="ignore")

    channel: Designation
    components: list[dict[str, Any]] | dict[str, Any] | None = Field(
        default=None, description="provider-specific content (e.g. WhatsApp components)"
    )
    keyboard: TemplateKeyboard | None = None
    attachments: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list,
        max_length=templates.MAX_ATTACHMENTS,
        description="links (e.g. a media storage mediaUrl); none on sms and notify, one on "
        "viber and instagram",
    )
    sender: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("attachments")
    @classmethod
    def _links(cls, value: list[str]) -> list[str]:
        for link in value:
            if not link.lower().startswith(("http://", "https://")):
                raise ValueError("an attachment is an http(s) link")
        return value

    def spec(self) -> templates.ChannelSpec:
        keyboard = self.keyboard.model_dump(exclude_none=True) if self.keyboard else None
        return templates.ChannelSpec(
            self.channel, self.components, keyboard, list(self.attachments), self.sender
        )


Order = Annotated[
    list[Annotated[list[str], Field(min_length=1, max_length=2)]] | None,
    Field(description='[[field, "ASC"|"DESC"], ...]: ' + ", ".join(templates.ORDER_FIELDS)),
]


class TemplateListBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    offset: int = Field(default=0, ge=0, le=2**31)
    limit: int | None = Field(default=None, ge=0, le=2**31, description="absent or null: all")
    order: Order = None


class TemplateCreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    displayName: str | None = Field(default=None, max_length=200)
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="#VAR# placeholders")
    name: str | None = Field(default=None, max_length=200, description="the event's name")
    channels: list[TemplateChannelIn] = Field(default_factory=list, max_length=len(NAMES))


class TemplateUpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Id
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class TemplateChannelAddBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    templateId: Id
    channel: TemplateChannelIn


class TemplateChannelRemoveBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    templateId: Id
    channel: Designation


class TemplateIdBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    templateId: Id


class TemplateGroupCreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    templates: list[Id] = Field(min_length=1, max_length=groups.MAX_TEMPLATES)


class TemplateGroupAddBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    templateId: Id
    templateGroupId: Id


# --- answers --------------------------------------------------------------------------


class TemplateChannelOut(BaseModel):
    id: int
    channel: str
    status: str  # moderate, approved, rejected
    updated_at: str
    components: Any
    keyboard: dict[str, Any] | None
    attachments: list[str]
    sender: str | None
    comment: str | None  # why moderation rejected it (omnirelay's addition)


class TemplateOut(BaseModel):
    id: int
    displayName: str
    text: str
    regexpText: str
    name: str | None
    channels: list[TemplateChannelOut]


class TemplateItem(TemplateOut):
    templateGroupId: int | None
    groupName: str | None
    group: list[TemplateOut]  # the group's templates, this one too, by id


class TemplateList(Success):
    data: list[TemplateItem]
    total: int


class TemplateAnswer(Success, TemplateOut):
    pass


class TemplateChannelAnswer(Success):
    id: int
    templateId: int
    channel: str
    status: str
    updated_at: str


class TemplateGroupAnswer(Success):
    id: int
    name: str
    created_at: str
    updated_at: str


def _channel(entry: TemplateChannel) -> TemplateChannelOut:
    return TemplateChannelOut(
        id=entry.id,
        channel=entry.channel,
        status=entry.status,
        updated_at=timestamp(entry.updated_at),
        components=entry.components,
        keyboard=entry.keyboard,
        attachments=list(entry.attachments or []),
        sender=entry.sender,
        comment=entry.comment,
    )


def _template(row: Template) -> dict[str, Any]:
    return {
        "id": row.id,
        "displayName": row.name,
        "text": row.text,
        "regexpText": regexp_text(row.text),
        "name": row.event,
        "channels": [_channel(e) for e in row.entries],
    }


def _item(
    row: Template, groups_by_id: dict[int, TemplateGroup], members: dict[int, list[Template]]
) -> TemplateItem:
    group = groups_by_id.get(row.group_id) if row.group_id is not None else None
    return TemplateItem(
        **_template(row),
        templateGroupId=group.id if group else None,
        groupName=group.name if group else None,
        group=[TemplateOut(**_template(m)) for m in members.get(group.id, [])] if group else [],
    )


# --- methods --------------------------------------------------------------------------


@router.post("/list", response_model=TemplateList)
def list_templates(ctx: Ctx, org_id: OrgId, body: TemplateListBody | None = None) -> TemplateList:
    """The organization's templates (those of /v3 too), with `offset`, `limit` (absent:
    all), `order` (default `[["createdAt", "DESC"]]`) and the `total`; each with its
    channel entries and its group."""
    body = body or TemplateListBody()
    with ctx.db.read() as session:
        listing = templates.list_page(session, org_id, body.offset, body.limit, body.order)
        data = [_item(r, listing.groups, listing.members) for r in listing.templates]
        return TemplateList(data=data, total=listing.total)


@router.post("/create", response_model=TemplateAnswer)
def create(ctx: Ctx, org_id: OrgId, body: TemplateCreateBody) -> TemplateAnswer:
    """A template with `text`, `displayName`, `name` (its event) and channels; each channel
    starts `moderate` and is moderated by its provider."""
    with ctx.db.transaction() as session:
        row = templates.create(
            session,
            org_id,
            text=body.text,
            display_name=body.displayName,
            event=body.name,
            channels=[c.spec() for c in body.channels],
        )
        return TemplateAnswer(**_template(row))


@router.post("/update", response_model=Success)
def update(ctx: Ctx, org_id: OrgId, body: TemplateUpdateBody) -> Success:
    """A new text: every channel goes back to moderation."""
    with ctx.db.transaction() as session:
        templates.update_text(session, org_id, body.id, body.text)
    return Success()


@router.post("/channel/add", response_model=TemplateChannelAnswer)
def add_channel(ctx: Ctx, org_id: OrgId, body: TemplateChannelAddBody) -> TemplateChannelAnswer:
    """Add a channel to a template: it starts `moderate`."""
    with ctx.db.transaction() as session:
        entry = templates.add_channel(session, org_id, body.templateId, body.channel.spec())
        return TemplateChannelAnswer(
            id=entry.id,
            templateId=body.templateId,
            channel=entry.channel,
            status=entry.status,
            updated_at=timestamp(entry.updated_at),
        )


@router.post("/channel/remove", response_model=Success)
def remove_channel(ctx: Ctx, org_id: OrgId, body: TemplateChannelRemoveBody) -> Success:
    """Remove a channel from a template."""
    with ctx.db.transaction() as session:
        templates.remove_channel(session, org_id, body.templateId, body.channel)
    return Success()


@router.post("/delete", response_model=Success)
def delete(ctx: Ctx, org_id: OrgId, body: TemplateIdBody) -> Success:
    """Delete a template (for /v3 too); it leaves its group."""
    with ctx.db.transaction() as session:
        templates.delete(session, org_id, body.templateId)
    return Success()


@router.post("/group/create", response_model=TemplateGroupAnswer)
def create_group(ctx: Ctx, org_id: OrgId, body: TemplateGroupCreateBody) -> TemplateGroupAnswer:
    """A group of templates: none may be in another group, and no two may share a
    channel."""
    with ctx.db.transaction() as session:
        group = groups.create(session, org_id, body.name, body.templates)
        return TemplateGroupAnswer(
            id=group.id,
            name=group.name,
            created_at=timestamp(group.created_at),
            updated_at=timestamp(group.updated_at),
        )


@router.post("/group/add", response_model=Success)
def add_to_group(ctx: Ctx, org_id: OrgId, body: TemplateGroupAddBody) -> Success:
    """Put a template into a group (the same rules as creating one)."""
    with ctx.db.transaction() as session:
        groups.add(session, org_id, body.templateId, body.templateGroupId)
    return Success()


@router.post("/group/remove", response_model=Success)
def remove_from_group(ctx: Ctx, org_id: OrgId, body: TemplateIdBody) -> Success:
    """Take a template out of its group; a group left empty is removed."""
    with ctx.db.transaction() as session:
        groups.remove(session, org_id, body.templateId)
    return Success()
