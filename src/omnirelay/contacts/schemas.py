"""What the contacts service takes, already shaped (the surface parses the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VariableValue:
    key: str  # a variable's id or name
    value: Any  # null or "" clears the value


@dataclass(frozen=True)
class NewContact:
    ids: dict[str, Any]  # wire name (phone, vkId, ...) -> value as given
    variables: list[VariableValue] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)  # {"vk": {...}}


@dataclass(frozen=True)
class Query:
    filter: Any = None
    offset: int = 0
    limit: int | None = None
    order: list[list[Any]] = field(default_factory=list)
