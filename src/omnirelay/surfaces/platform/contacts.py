"""Contacts and variables of the platform API (seed 004): /user/contacts*, /user/variables/*."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from omnirelay.contacts import service as contacts
from omnirelay.contacts import tasks as contact_tasks
from omnirelay.contacts import unit
from omnirelay.contacts.filters import MAX_CONDITIONS, MAX_DEPTH, OPERATORS
from omnirelay.contacts.models import CHANNEL_IDS
from omnirelay.contacts.schemas import NewContact, Query, VariableValue
from omnirelay.errors import InvalidInput
from omnirelay.surfaces.platform.deps import Ctx, OrgId

router = APIRouter()
TAG = "contacts"
MAX_IMPORT_CHARS = 10_000_000

_CONDITION = {
    "type": "object",
    "properties": {
        "field": {"type": "string", "description": "a variable id or name, or a contact field"},
        "op": {"type": "string", "enum": OPERATORS},
        "value": {},
    },
    "required": ["field", "op"],
}
_UNION = {"type": ["string", "null"], "enum": ["and", "or", None]}
# The filter is recursive (any depth up to MAX_DEPTH); the document shows two levels.
FILTER_SCHEMA = {
    "type": ["object", "null"],
    "description": (
        f"ContactsFilter: {{union: and|or|null, conditions: [condition | filter]}}, at most "
        f"{MAX_DEPTH} levels and {MAX_CONDITIONS} conditions; a condition is "
        "{field, op, value}."
    ),
    "properties": {
        "union": _UNION,
        "conditions": {
            "type": "array",
            "items": {
                "anyOf": [
                    _CONDITION,
                    {
                        "type": "object",
                        "properties": {
                            "union": _UNION,
                            "conditions": {"type": "array", "items": _CONDITION},
                        },
                        "required": ["conditions"],
                    },
                ]
            },
        },
    },
}
Filter = Annotated[dict[str, Any] | None, WithJsonSchema(FILTER_SCHEMA)]
Order = Annotated[
    list[list[str]] | None,
    Field(
        description='[[field, "ASC"|"DESC"], ...]: createdAt, updatedAt, id, a channel id '
        "or a variable id or name"
    ),
]
IdValue = Annotated[str | int | None, Field(default=None)]
Scalar = str | int | float | None


class Success(BaseModel):
    result: str = "success"


class ListBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filter: Filter = None
    offset: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=0, description="absent or null: all")
    order: Order = None


class VariableRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    value: Scalar = None

    def ref(self, where: str) -> VariableValue:
        key = self.id or self.name
        if not key:
            raise InvalidInput("missing_field", f'No field "id" or "name" in {where}', field=where)
        return VariableValue(key, self.value)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # source objects: {"vk": {...}}

    phone: IdValue
    vkId: IdValue
    viberId: IdValue
    telegramId: IdValue
    fbId: IdValue
    instagramId: IdValue
    webchatId: IdValue
    variables: list[VariableRef] = Field(default_factory=list, max_length=200)

    def new(self, i: int) -> NewContact:
        ids = {wire: getattr(self, wire) for wire in CHANNEL_IDS}
        extra = self.model_extra or {}
        sources = {k: v for k, v in extra.items() if k in contacts.SOURCE_KEYS}
        for key, value in sources.items():
            if not isinstance(value, dict):
                raise InvalidInput("invalid_field", f"{i}.{key}: must be an object", field=key)
        refs = [v.ref(f"{i}.variables.{j}") for j, v in enumerate(self.variables)]
        return NewContact(ids=ids, variables=refs, sources=sources)


class GetBody(BaseModel):
    id: str = Field(min_length=1, max_length=64)


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    contactId: str = Field(min_length=1, max_length=64)
    phone: IdValue
    vkId: IdValue
    viberId: IdValue
    fbId: IdValue
    telegramId: IdValue
    instagramId: IdValue


class SetVariablesBody(BaseModel):
    contactId: str = Field(min_length=1, max_length=64)
    variables: list[VariableRef] = Field(max_length=200)


class ContactOut(BaseModel):
    """A contact: its id, channel ids, source objects by channel, channels, timestamps."""

    model_config = ConfigDict(extra="allow")

    id: str
    phone: str | None = None
    vkId: int | str | None = None
    channels: list[str]
    createdAt: str
    updatedAt: str
    variables: list[dict[str, Any]]


class ContactAnswer(Success, ContactOut):
    pass


class ContactList(Success):
    data: list[ContactOut]
    total: int | None = None


class VariableOut(BaseModel):
    id: str
    name: str
    validateAs: str


class VariableList(Success):
    data: list[VariableOut]


class VariableBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    validateAs: str = "STRING"


class IdAnswer(Success):
    id: str


class IdBody(BaseModel):
    id: str = Field(min_length=1, max_length=64)


def _list(ctx: Ctx, org_id: str, body: ListBody | None) -> ContactList:
    body = body or ListBody()
    query = Query(body.filter, body.offset, body.limit, [list(o) for o in body.order or []])
    with ctx.db.read() as session:
        data, total = contacts.list_contacts(session, org_id, query)
    return ContactList(data=[ContactOut.model_validate(c) for c in data], total=total)


@router.post("/contacts", response_model=ContactList, tags=[TAG])
def list_contacts(ctx: Ctx, org_id: OrgId, body: ListBody | None = None) -> ContactList:
    """Contacts matching `filter`, with `offset`, `limit` (absent: all), `order` and the
    `total` that match."""
    return _list(ctx, org_id, body)


@router.post("/contacts/list", response_model=ContactList, tags=[TAG])
def list_contacts_alias(ctx: Ctx, org_id: OrgId, body: ListBody | None = None) -> ContactList:
    """The same as `/user/contacts`."""
    return _list(ctx, org_id, body)


@router.post("/contacts/get", response_model=ContactAnswer, tags=[TAG])
def get_contact(ctx: Ctx, org_id: OrgId, body: GetBody) -> ContactAnswer:
    """A contact's channel ids and variables."""
    with ctx.db.read() as session:
        return ContactAnswer.model_validate(contacts.get(session, org_id, body.id))


@router.post("/contacts/create", response_model=ContactList, tags=[TAG])
def create_contacts(
    ctx: Ctx,
    org_id: OrgId,
    body: Annotated[list[ContactIn], Body(description="up to 1000 contacts")],
) -> ContactList:
    """Create contacts (an array, up to 1000). One whose channel id a contact has already
    goes into that contact; the answer lists the contacts in the order given."""
    items = [c.new(i) for i, c in enumerate(body)]
    data = unit.run(ctx.db, lambda s: contacts.create(s, org_id, items))
    return ContactList(data=[ContactOut.model_validate(c) for c in data])


@router.post("/contacts/update", response_model=Success, tags=[TAG])
def update_contact(ctx: Ctx, org_id: OrgId, body: UpdateBody) -> Success:
    """Set one channel id (`phone`, `vkId`, `viberId`, `fbId`, `telegramId` or
    `instagramId`); if another contact has it, the two are merged."""
    given = [
        (wire, getattr(body, wire))
        for wire in ("phone", "vkId", "viberId", "fbId", "telegramId", "instagramId")
        if getattr(body, wire) is not None
    ]
    if len(given) != 1:
        raise InvalidInput(
            "invalid_body",
            "Give exactly one of phone, vkId, viberId, fbId, telegramId, instagramId",
        )
    wire, value = given[0]
    unit.run(ctx.db, lambda s: contacts.update_channel_id(s, org_id, body.contactId, wire, value))
    return Success()


@router.post("/variables/list", response_model=VariableList, tags=["variables"])
def list_variables(ctx: Ctx, org_id: OrgId) -> VariableList:
    """The organization's variables (the six defaults first)."""
    with ctx.db.read() as session:
        rows = contacts.list_variables(session, org_id)
    return VariableList(
        data=[VariableOut(id=v.id, name=v.name, validateAs=v.validate_as) for v in rows]
    )


@router.post("/variables/create", response_model=IdAnswer, tags=["variables"])
def create_variable(ctx: Ctx, org_id: OrgId, body: VariableBody) -> IdAnswer:
    """A new variable: `validateAs` STRING (default), NUMBER or DATE."""
    with ctx.db.transaction() as session:
        row = contacts.create_variable(session, org_id, body.name, body.validateAs)
        return IdAnswer(id=row.id)


@router.post("/variables/delete", response_model=Success, tags=["variables"])
def delete_variable(ctx: Ctx, org_id: OrgId, body: IdBody) -> Success:
    """Delete a variable and every contact's value of it (not a default one)."""
    with ctx.db.transaction() as session:
        contacts.delete_variable(session, org_id, body.id)
    return Success()


@router.post("/variables/set", response_model=Success, tags=["variables"])
def set_variables(ctx: Ctx, org_id: OrgId, body: SetVariablesBody) -> Success:
    """Set a contact's variables, by `id` or `name`; a null or empty value clears one."""
    refs = [v.ref(f"variables.{i}") for i, v in enumerate(body.variables)]
    with ctx.db.transaction() as session:
        contacts.set_variables(session, org_id, body.contactId, refs)
    return Success()


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["csv", "jsonl"] = Field(description="csv: a header line of column names")
    data: str = Field(min_length=1, max_length=MAX_IMPORT_CHARS, description="the file's text")


class ImportStatus(Success):
    id: str
    status: str
    rows: int
    processed: int
    created: int
    merged: int
    refused: int
    errors: list[dict[str, Any]]


@router.post("/contacts/import", response_model=IdAnswer, tags=[TAG])
def import_contacts(ctx: Ctx, org_id: OrgId, body: ImportBody) -> IdAnswer:
    """Import contacts from a CSV or JSON Lines text, as a job: columns are channel ids
    (`phone`, `vkId`, ...) and variable names or ids. Poll `/user/contacts/importStatus`."""
    with ctx.db.transaction() as session:
        run = contact_tasks.start_import(session, org_id, body.format, body.data)
        return IdAnswer(id=run.id)


@router.post("/contacts/importStatus", response_model=ImportStatus, tags=[TAG])
def import_status(ctx: Ctx, org_id: OrgId, body: IdBody) -> ImportStatus:
    """How far an import got: rows processed of `rows`, created, merged and refused
    (with the line and reason of each refused row, up to 1000)."""
    with ctx.db.read() as session:
        run = contacts.get_import(session, org_id, body.id)
        return ImportStatus(
            id=run.id,
            status=run.status,
            rows=run.total_rows,
            processed=run.processed,
            created=run.created,
            merged=run.merged,
            refused=run.refused,
            errors=list(run.errors),
        )
