"""Balance and prices. A message is priced by channel and SMS parts when it is accepted."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from omnirelay.billing import repository as repo
from omnirelay.billing.models import UNIT, Balance
from omnirelay.config import get_settings
from omnirelay.errors import InvalidInput


def to_units(value: str | Decimal | int | float) -> int:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput("invalid_amount", f"not an amount: {value!r}") from exc
    if not amount.is_finite() or amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidInput("invalid_amount", "amounts have at most 4 decimal places")
    return int(amount * UNIT)


def format_units(units: int) -> str:
    """'500.25'; sub-cent amounts keep their digits ('0.0125')."""
    value = Decimal(units) / UNIT
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def default_prices() -> dict[str, int]:
    out: dict[str, int] = {}
    for item in get_settings().default_prices.split(","):
        channel, _, amount = item.partition("=")
        if channel.strip():
            out[channel.strip()] = to_units(amount.strip())
    return out


def price_list(session: Session, organization_id: str) -> dict[str, int]:
    out = default_prices()
    out.update({p.channel: p.amount for p in repo.prices(session, organization_id)})
    return out


def set_price(session: Session, organization_id: str, channel: str, amount: str) -> None:
    units = to_units(amount)
    if units < 0:
        raise InvalidInput("invalid_amount", "a price cannot be negative", field="amount")
    repo.set_price(session, organization_id, channel, units)


def open_account(session: Session, organization_id: str) -> Balance:
    settings = get_settings()
    row = Balance(
        organization_id=organization_id,
        amount=to_units(settings.initial_balance),
        currency=settings.currency,
    )
    repo.add_balance(session, row)
    return row


def balance(session: Session, organization_id: str) -> Balance:
    row = repo.get_balance(session, organization_id)
    return row if row is not None else open_account(session, organization_id)


def debit(session: Session, organization_id: str, amount: int) -> bool:
    if amount <= 0:
        return True
    if repo.get_balance(session, organization_id) is None:
        open_account(session, organization_id)
    return repo.debit(session, organization_id, amount)


def top_up(session: Session, organization_id: str, amount: str) -> Balance:
    units = to_units(amount)
    if units == 0:
        raise InvalidInput("invalid_amount", "amount must not be zero", field="amount")
    row = balance(session, organization_id)
    if row.amount + units < 0:
        raise InvalidInput("invalid_amount", "the balance cannot go below zero", field="amount")
    repo.credit(session, organization_id, units)
    session.refresh(row)
    return row
