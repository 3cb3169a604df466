"""Deals and deal attributes: the rules. Takes a Session, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.contacts import repository as contacts
from omnirelay.contacts.render import timestamp
from omnirelay.db import utcnow
from omnirelay.deals import repository as repo
from omnirelay.deals import values
from omnirelay.deals.filters import compile_filter
from omnirelay.deals.models import ENTITIES, TYPES, Deal, DealAttribute, DealProduct
from omnirelay.deals.schemas import AttributeValue, DealIn
from omnirelay.errors import Conflict, DomainError, InvalidInput, NotFound

DEFAULT_ATTRIBUTES = (
    ("Status", "SELECT", "deal", ["New", "In progress", "Completed", "Cancelled"]),
    ("Amount", "NUMBER", "deal", None),
    ("Name", "STRING", "product", None),
    ("Cost", "NUMBER", "product", None),
)
MAX_BATCH = 500  # deals per create or delete request
MAX_OPTIONS = 500
MAX_ORDER = 5
MISSING = "1053"  # seed 001: Missed value that is obligatory
ORDER_FIELDS = {
    "id": Deal.id,
    "name": Deal.name,
    "createdAt": Deal.created_at,
    "updatedAt": Deal.updated_at,
    "contactId": Deal.contact_id,
}
EDITABLE = ("name", "type", "options", "required", "entity", "api_field", "active")


def create_defaults(session: Session, organization_id: str) -> None:
    """The four attributes every organization starts with (onboarding)."""
    for name, kind, entity, options in DEFAULT_ATTRIBUTES:
        repo.add_attribute(
            session,
            DealAttribute(
                organization_id=organization_id,
                name=name,
                type=kind,
                entity=entity,
                options=options,
                is_default=True,
            ),
        )


# --- attributes ---------------------------------------------------------------------


def attribute_out(attr: DealAttribute) -> dict[str, Any]:
    return {
        "id": attr.id,
        "name": attr.name,
        "type": attr.type,
        "options": attr.options,
        "required": attr.required,
        "entity": attr.entity,
        "apiField": attr.api_field,
        "active": attr.active,
        "isDefault": attr.is_default,
    }


def _check_attribute(session: Session, organization_id: str, attr: DealAttribute) -> None:
    if not attr.name.strip():
        raise InvalidInput("invalid_field", "name: must not be empty", field="name")
    if attr.type not in TYPES:
        raise InvalidInput("invalid_field", f"type: one of {', '.join(TYPES)}", field="type")
    if attr.entity not in ENTITIES:
        raise InvalidInput("invalid_field", "entity: deal or product", field="entity")
    if attr.type in ("SELECT", "MULTISELECT"):
        options = attr.options
        if not options or len(options) > MAX_OPTIONS:
            raise InvalidInput(
                "invalid_field", f"options: 1 to {MAX_OPTIONS} for {attr.type}", field="options"
            )
        if len(set(map(repr, options))) != len(options):
            raise InvalidInput("invalid_field", "options: repeated", field="options")
    elif attr.options:
        raise InvalidInput("invalid_field", f"options: not for {attr.type}", field="options")
    else:
        attr.options = None
    other = repo.attribute_named(session, organization_id, attr.entity, attr.name)
    if other is not None and other is not attr:
        raise Conflict("attribute_exists", f"An attribute named {attr.name!r} exists", field="name")


def list_attributes(session: Session, organization_id: str) -> list[DealAttribute]:
    return repo.attributes(session, organization_id)


def create_attribute(
    session: Session, organization_id: str, fields: dict[str, Any]
) -> DealAttribute:
    attr = DealAttribute(organization_id=organization_id, is_default=False, **fields)
    _check_attribute(session, organization_id, attr)
    repo.add_attribute(session, attr)
    return attr


def _attribute(session: Session, organization_id: str, attribute_id: str) -> DealAttribute:
    attr = repo.attribute(session, organization_id, attribute_id)
    if attr is None:
        raise NotFound("attribute_not_found", "Attribute not found", field="id")
    return attr


def update_attribute(
    session: Session, organization_id: str, attribute_id: str, fields: dict[str, Any]
) -> DealAttribute:
    """Only the fields given change. A default attribute keeps its type and entity."""
    attr = _attribute(session, organization_id, attribute_id)
    if attr.is_default:
        for key in ("type", "entity"):
            if key in fields and fields[key] != getattr(attr, key):
                raise InvalidInput(
                    "1058", f"User can't make that action: {key} of a default", field=key
                )
    for key, value in fields.items():
        setattr(attr, key, value)
    _check_attribute(session, organization_id, attr)
    session.flush()
    return attr


def delete_attribute(session: Session, organization_id: str, attribute_id: str) -> None:
    """Values of a deleted attribute stay in the deals' JSON but are no longer shown."""
    attr = _attribute(session, organization_id, attribute_id)
    if attr.is_default:
        raise InvalidInput("1058", "User can't make that action: a default attribute", field="id")
    repo.delete_attribute(session, attr)


# --- deals --------------------------------------------------------------------------


class _Attributes:
    """The organization's attributes, loaded once per request."""

    def __init__(self, session: Session, organization_id: str) -> None:
        self.by_id = {a.id: a for a in repo.attributes(session, organization_id)}

    def values(self, entity: str, given: Sequence[AttributeValue], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, item in enumerate(given):
            where = f"{path}.{i}"
            attr = self.by_id.get(item.id)
            if attr is None:
                raise NotFound("attribute_not_found", f"{where}: unknown attribute", field=where)
            if attr.entity != entity:
                raise InvalidInput(
                    "1052", f"{where}: an attribute of {attr.entity}, not {entity}", field=where
                )
            out[attr.id] = values.check(attr, item.value, f"{where}.value")
        for attr in self.by_id.values():
            if attr.entity == entity and attr.required and attr.active and out.get(attr.id) is None:
                raise InvalidInput(
                    MISSING, f"Missed value that is obligatory: {attr.name}", field=path
                )
        return out

    def shown(self, stored: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {**attribute_out(self.by_id[aid]), "value": value}
            for aid, value in stored.items()
            if aid in self.by_id
        ]


def _render(session: Session, attrs: _Attributes, deals: Sequence[Deal]) -> list[dict[str, Any]]:
    per_deal: dict[str, list[DealProduct]] = {}
    for product in repo.products(session, [d.id for d in deals]):
        per_deal.setdefault(product.deal_id, []).append(product)
    return [
        {
            "id": d.id,
            "name": d.name,
            "attributes": attrs.shown(d.attribute_values),
            "products": [
                {"id": p.id, "dealId": d.id, "attributes": attrs.shown(p.attribute_values)}
                for p in per_deal.get(d.id, [])
            ],
            "contactId": d.contact_id,
            "createdAt": timestamp(d.created_at),
            "updatedAt": timestamp(d.updated_at),
        }
        for d in deals
    ]


def _contact(session: Session, organization_id: str, contact_id: str) -> str:
    """The contact's id; a merged-away contact's id names the one it was merged into."""
    contact = contacts.get(session, organization_id, contact_id)
    if contact is None:
        raise NotFound("contact_not_found", "Contact not found", field="contactId")
    return contact.id


def _name(name: str) -> str:
    if not name.strip():
        raise InvalidInput("invalid_field", "name: must not be empty", field="name")
    return name


def _create_one(session: Session, organization_id: str, attrs: _Attributes, item: DealIn) -> Deal:
    contact_id = _contact(session, organization_id, item.contact_id)
    now = utcnow()
    deal = Deal(
        organization_id=organization_id,
        contact_id=contact_id,
        name=_name(item.name),
        attribute_values=attrs.values("deal", item.attributes, "attributes"),
        created_at=now,
        updated_at=now,
    )
    repo.add(session, deal)
    for i, product in enumerate(item.products):
        stored = attrs.values("product", product.attributes, f"products.{i}.attributes")
        repo.add(session, DealProduct(deal_id=deal.id, position=i, attribute_values=stored))
    return deal


def create(session: Session, organization_id: str, item: DealIn) -> dict[str, Any]:
    attrs = _Attributes(session, organization_id)
    return _render(session, attrs, [_create_one(session, organization_id, attrs, item)])[0]


def create_batch(
    session: Session, organization_id: str, items: Sequence[DealIn]
) -> list[dict[str, Any]]:
    """Each deal on its own (a savepoint): a refused one is ``{error, code}`` at its index,
    the others are created."""
    if len(items) > MAX_BATCH:
        raise InvalidInput("batch_too_large", f"At most {MAX_BATCH} deals per request")
    attrs = _Attributes(session, organization_id)
    out: list[dict[str, Any]] = []
    for item in items:
        try:
            with session.begin_nested():
                deal = _create_one(session, organization_id, attrs, item)
        except DomainError as exc:
            out.append({"error": exc.message, "code": exc.code})
            continue
        out.append(_render(session, attrs, [deal])[0])
    return out


def _deal(session: Session, organization_id: str, deal_id: str) -> Deal:
    deal = repo.deal(session, organization_id, deal_id, lock=True)
    if deal is None:
        raise NotFound("deal_not_found", "Deal not found", field="id")
    return deal


def update(session: Session, organization_id: str, deal_id: str, item: DealIn) -> dict[str, Any]:
    """The seed's full replacement: attributes not given are unlinked; products given with
    their id are replaced, without one added, and products not given are removed."""
    attrs = _Attributes(session, organization_id)
    deal = _deal(session, organization_id, deal_id)
    contact_id = _contact(session, organization_id, item.contact_id)
    deal.name = _name(item.name)
    deal.contact_id = contact_id
    deal.attribute_values = attrs.values("deal", item.attributes, "attributes")
    existing = {p.id: p for p in repo.products(session, [deal.id])}
    kept: set[str] = set()
    for i, product in enumerate(item.products):
        stored = attrs.values("product", product.attributes, f"products.{i}.attributes")
        if product.id is not None:
            row = existing.get(product.id)
            if row is None:
                raise NotFound(
                    "product_not_found",
                    f"products.{i}.id: not a product of the deal",
                    field=f"products.{i}.id",
                )
            row.attribute_values, row.position = stored, i
            kept.add(row.id)
        else:
            repo.add(session, DealProduct(deal_id=deal.id, position=i, attribute_values=stored))
    repo.delete_products(session, [pid for pid in existing if pid not in kept])
    deal.updated_at = utcnow()
    session.flush()
    return _render(session, attrs, [deal])[0]


def set_value(
    session: Session,
    organization_id: str,
    deal_id: str,
    attribute_id: str,
    product_id: str | None,
    value: Any,
) -> None:
    """Change the value of an attribute the deal (or its product) has; never links one."""
    deal = _deal(session, organization_id, deal_id)
    attr = _attribute(session, organization_id, attribute_id)
    target: Deal | DealProduct = deal
    if product_id is not None:
        found = [p for p in repo.products(session, [deal.id]) if p.id == product_id]
        if not found:
            raise NotFound("product_not_found", "Product not found", field="productId")
        target = found[0]
    if attr.id not in target.attribute_values:
        raise InvalidInput(
            "attribute_not_linked",
            "The attribute is not linked to this deal or product (update the deal to add it)",
            field="attributeId",
        )
    checked = values.check(attr, value, "value")
    if checked is None and attr.required and attr.active:
        raise InvalidInput(MISSING, f"Missed value that is obligatory: {attr.name}", field="value")
    target.attribute_values = {**target.attribute_values, attr.id: checked}
    deal.updated_at = utcnow()
    session.flush()


def delete(session: Session, organization_id: str, deal_id: str) -> None:
    repo.delete_deal(session, _deal(session, organization_id, deal_id))


def delete_batch(session: Session, organization_id: str, ids: Sequence[str]) -> list[Any]:
    if len(ids) > MAX_BATCH:
        raise InvalidInput("batch_too_large", f"At most {MAX_BATCH} deals per request")
    out: list[Any] = []
    for deal_id in ids:
        deal = repo.deal(session, organization_id, deal_id, lock=True)
        if deal is None:
            out.append({"error": "Deal not found", "code": "deal_not_found"})
            continue
        repo.delete_deal(session, deal)
        out.append(True)
    return out


def list_deals(
    session: Session,
    organization_id: str,
    raw_filter: Any,
    offset: int,
    limit: int | None,
    order: list[list[Any]],
) -> tuple[list[dict[str, Any]], int]:
    if offset < 0:
        raise InvalidInput("invalid_field", "offset: must be >= 0", field="offset")
    if limit is not None and limit < 0:
        raise InvalidInput("invalid_field", "limit: must be >= 0", field="limit")
    attrs = _Attributes(session, organization_id)
    where = compile_filter(raw_filter, attrs.by_id.get)
    keys: list[Any] = []
    if len(order) > MAX_ORDER:
        raise InvalidInput("invalid_order", f"order: at most {MAX_ORDER} fields", field="order")
    for i, item in enumerate(order or [["createdAt", "DESC"]]):
        path = f"order.{i}"
        ok = isinstance(item, list) and len(item) in (1, 2) and item[0] in ORDER_FIELDS
        direction = item[1] if ok and len(item) == 2 else "ASC"
        if not ok or not isinstance(direction, str) or direction.upper() not in ("ASC", "DESC"):
            raise InvalidInput(
                "invalid_order",
                f"{path}: [field, ASC|DESC], field one of {', '.join(ORDER_FIELDS)}",
                field=path,
            )
        column = ORDER_FIELDS[item[0]]
        keys.append(column.desc() if direction.upper() == "DESC" else column.asc())
    keys.append(Deal.id.asc())
    total = repo.count(session, organization_id, where)
    rows = repo.page(session, organization_id, where, keys, offset, limit)
    return _render(session, attrs, rows), total
