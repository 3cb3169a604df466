"""Deals and deal attributes of the platform API (seed 004): /user/deals/*."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from omnirelay.deals import service as deals
from omnirelay.deals.models import TYPES
from omnirelay.deals.schemas import AttributeValue, DealIn, ProductIn
from omnirelay.surfaces.platform.contacts import Filter, IdBody, Success
from omnirelay.surfaces.platform.deps import Ctx, OrgId

router = APIRouter()
TAG = "deals"
Scalar = str | int | float | bool | None
AttrType = Literal[
    "STRING", "NUMBER", "DATE", "DATETIME", "BOOLEAN", "SELECT", "MULTISELECT", "URL"
]
assert set(AttrType.__args__) == set(TYPES)  # type: ignore[attr-defined]


class AttributeFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    type: AttrType = "STRING"
    options: list[str | int | float] | None = Field(default=None, max_length=deals.MAX_OPTIONS)
    required: bool = False
    entity: Literal["deal", "product"] = "deal"
    apiField: str | None = Field(default=None, max_length=500)
    active: bool = True

    def fields(self, only_set: bool = False) -> dict[str, Any]:
        data = self.model_dump(exclude_unset=only_set, exclude={"id", "isDefault"})
        if "apiField" in data:
            data["api_field"] = data.pop("apiField")
        return data


class AttributeUpdate(AttributeFields):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)  # only the fields given change
    isDefault: bool | None = None  # shown by the seed; set by the system, not by this call


class AttributeOut(BaseModel):
    id: str
    name: str
    type: str
    options: list[Any] | None
    required: bool
    entity: str
    apiField: str | None
    active: bool
    isDefault: bool


class AttributeAnswer(Success, AttributeOut):
    pass


class AttributeList(Success):
    data: list[AttributeOut]


class AttributeSimple(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    value: Scalar | list[str | int | float] = None


class ProductBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, max_length=64)
    attributes: list[AttributeSimple] = Field(default_factory=list, max_length=200)


class DealBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=500)
    attributes: list[AttributeSimple] = Field(max_length=200)
    products: list[ProductBody] = Field(default_factory=list, max_length=500)
    contactId: str = Field(min_length=1, max_length=64)

    def deal(self) -> DealIn:
        return DealIn(
            name=self.name,
            contact_id=self.contactId,
            attributes=[AttributeValue(a.id, a.value) for a in self.attributes],
            products=[
                ProductIn([AttributeValue(a.id, a.value) for a in p.attributes], p.id)
                for p in self.products
            ],
        )


class DealUpdateBody(DealBody):
    id: str = Field(min_length=1, max_length=64)


class DealAnswer(Success):
    model_config = ConfigDict(extra="allow")

    id: str


class DealBatch(Success):
    data: list[dict[str, Any]]


class DealList(Success):
    data: list[dict[str, Any]]
    total: int


class ListBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filter: Filter = None
    offset: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=0, description="absent or null: all")
    order: list[list[str]] | None = None


class SetValueBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dealId: str = Field(min_length=1, max_length=64)
    attributeId: str = Field(min_length=1, max_length=64)
    productId: str | None = Field(default=None, max_length=64)
    value: Scalar | list[str | int | float] = None


class DeleteAnswer(Success):
    data: bool | list[Any]


def _attribute(attr: Any) -> AttributeAnswer:
    return AttributeAnswer(**deals.attribute_out(attr))


@router.post("/deals/attributes/list", response_model=AttributeList, tags=[TAG])
def list_attributes(ctx: Ctx, org_id: OrgId) -> AttributeList:
    """Deal and product attributes (the four defaults first)."""
    with ctx.db.read() as session:
        rows = deals.list_attributes(session, org_id)
        return AttributeList(data=[AttributeOut(**deals.attribute_out(a)) for a in rows])


@router.post("/deals/attributes/create", response_model=AttributeAnswer, tags=[TAG])
def create_attribute(ctx: Ctx, org_id: OrgId, body: AttributeFields) -> AttributeAnswer:
    """A new attribute of deals (`entity: deal`) or of their products (`product`)."""
    with ctx.db.transaction() as session:
        return _attribute(deals.create_attribute(session, org_id, body.fields()))


@router.post("/deals/attributes/update", response_model=AttributeAnswer, tags=[TAG])
def update_attribute(ctx: Ctx, org_id: OrgId, body: AttributeUpdate) -> AttributeAnswer:
    """Change the fields given; the others stay."""
    fields = body.fields(only_set=True)
    fields.pop("id", None)
    with ctx.db.transaction() as session:
        return _attribute(deals.update_attribute(session, org_id, body.id, fields))


@router.post("/deals/attributes/delete", response_model=Success, tags=[TAG])
def delete_attribute(ctx: Ctx, org_id: OrgId, body: IdBody) -> Success:
    """Delete an attribute (not a default one)."""
    with ctx.db.transaction() as session:
        deals.delete_attribute(session, org_id, body.id)
    return Success()


@router.post("/deals/create", response_model=DealAnswer | DealBatch, tags=[TAG])
def create_deal(
    ctx: Ctx,
    org_id: OrgId,
    body: Annotated[DealBody | list[DealBody], Body(description="one deal, or up to 500")],
) -> DealAnswer | DealBatch:
    """Create a deal of a contact, or several (an array): in a batch a refused deal is
    `{error, code}` at its index and the others are created."""
    with ctx.db.transaction() as session:
        if isinstance(body, list):
            return DealBatch(data=deals.create_batch(session, org_id, [d.deal() for d in body]))
        return DealAnswer(**deals.create(session, org_id, body.deal()))


@router.post("/deals/list", response_model=DealList, tags=[TAG])
def list_deals(ctx: Ctx, org_id: OrgId, body: ListBody | None = None) -> DealList:
    """Deals matching `filter` (deal fields and deal attributes), with `offset`, `limit`
    (absent: all), `order` and `total`."""
    body = body or ListBody()
    with ctx.db.read() as session:
        data, total = deals.list_deals(
            session,
            org_id,
            body.filter,
            body.offset,
            body.limit,
            [list(o) for o in body.order or []],
        )
    return DealList(data=data, total=total)


@router.post("/deals/update", response_model=DealAnswer, tags=[TAG])
def update_deal(ctx: Ctx, org_id: OrgId, body: DealUpdateBody) -> DealAnswer:
    """Replace a deal: attributes not given are unlinked; products with their `id` are
    replaced, without one added; products not given are removed."""
    with ctx.db.transaction() as session:
        return DealAnswer(**deals.update(session, org_id, body.id, body.deal()))


@router.post("/deals/setAttribute", response_model=Success, tags=[TAG])
def set_attribute(ctx: Ctx, org_id: OrgId, body: SetValueBody) -> Success:
    """Change the value of one attribute the deal (or, with `productId`, its product)
    already has."""
    with ctx.db.transaction() as session:
        deals.set_value(session, org_id, body.dealId, body.attributeId, body.productId, body.value)
    return Success()


@router.post("/deals/delete", response_model=DeleteAnswer, tags=[TAG])
def delete_deal(
    ctx: Ctx,
    org_id: OrgId,
    body: Annotated[IdBody | list[IdBody], Body(description="{id}, or an array of them")],
) -> DeleteAnswer:
    """Delete a deal (`data: true`), or several (an array): `data` has `true` or
    `{error, code}` at each index."""
    with ctx.db.transaction() as session:
        if isinstance(body, list):
            return DeleteAnswer(data=deals.delete_batch(session, org_id, [b.id for b in body]))
        deals.delete(session, org_id, body.id)
    return DeleteAnswer(data=True)
