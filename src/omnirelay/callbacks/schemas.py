"""Admin API shapes of call-back configuration."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _drop_nulls(data: Any, keep: frozenset[str] = frozenset()) -> Any:
    """``null`` in a settings body means "not given": the settings cannot be null, and the
    service leaves out what is not given (a create takes the default)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None or k in keep}
    return data


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "inactive"] = "active"
    day_of_week: list[int] = Field(description="0 = Monday ... 6 = Sunday")
    start_time: list[str] = Field(examples=[["09:00"]])
    end_time: list[str] = Field(examples=[["17:00"]])


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "paused"] | None = None
    sms: bool | None = None
    questions: bool | None = None
    scheduling: bool | None = None
    timezone: str | None = Field(default=None, max_length=64)
    offer_interval: int | None = Field(default=None, ge=1, le=1440)
    max_scheduled: int | None = Field(default=None, ge=0, le=365)
    max_options: int | None = Field(default=None, ge=1, le=200)
    daily_overflow: bool | None = None
    entries: list[Entry] | None = Field(default=None, max_length=50)
    retry_attempts: int | None = Field(default=None, ge=0, le=10)
    retry_interval: int | None = Field(default=None, ge=0, le=86400)
    telephony: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _drop_nulls(data)


class OptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    position: int = Field(default=1, ge=0, le=10_000)
    status: Literal["active", "paused", "closed"] = "active"
    destination: str | None = Field(default=None, max_length=200)


class OptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    position: int | None = Field(default=None, ge=0, le=10_000)
    status: Literal["active", "paused", "closed"] | None = None
    destination: str | None = Field(default=None, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return _drop_nulls(data, keep=frozenset({"destination"}))  # null: no destination


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    kind: Literal["text", "number", "choice"] = "text"
    choices: list[str] = Field(default_factory=list, max_length=50)
    required: bool = False
    position: int = Field(default=1, ge=0, le=10_000)


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class AgentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["available", "busy", "away"]


class AgentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sid: str
    option_sid: str
    name: str
    state: str
    call_sid: str | None
