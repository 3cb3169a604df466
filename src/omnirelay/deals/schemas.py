"""What the deals service takes, already shaped (the surface parses the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AttributeValue:
    id: str
    value: Any


@dataclass(frozen=True)
class ProductIn:
    attributes: list[AttributeValue] = field(default_factory=list)
    id: str | None = None  # an existing product (update)


@dataclass(frozen=True)
class DealIn:
    name: str
    contact_id: str
    attributes: list[AttributeValue] = field(default_factory=list)
    products: list[ProductIn] = field(default_factory=list)
