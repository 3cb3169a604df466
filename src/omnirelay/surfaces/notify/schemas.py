"""Request shapes of /v3 for the OpenAPI document. The routes read bodies themselves so
that every error has the seed's wording; these models describe, they do not validate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Action(BaseModel):
    title: str = Field(max_length=30)
    url: str


class Common(BaseModel):
    custom_id: str | None = Field(default=None, max_length=200)
    report: str | None = Field(default=None, description="Status report URL")
    reply: str | None = Field(default=None, description="URL for end-user replies")
    daydelivery: bool = Field(default=False, description="Deliver in daylight hours only")
    delivery_date: str | None = Field(
        default=None, description="Y-m-d H:i:s, UTC, at most 72 h ahead"
    )


class SendSMS(Common):
    sender: str
    phone: str
    text: str
    ttl: int = Field(default=172800, ge=60, le=172800)


class SendViber(Common):
    sender: str
    phone: str
    text: str | None = None
    image: str | None = None
    action: Action | None = None
    ttl: int = Field(default=600, ge=60, le=86400)


class SendVK(Common):
    group: int
    phone: str
    text: str
    ttl: int = Field(default=600, ge=60, le=86400)


class SendTelegram(Common):
    phone: str
    text: str
    sender: str | None = None
    ttl: int = Field(default=600, ge=60, le=86400)


class RouteStep(BaseModel):
    channel: Literal["sms", "viber", "vk", "telegram"]
    phone: str
    text: str | None = None
    sender: str | None = None
    group: int | None = None
    image: str | None = None
    action: Action | None = None
    ttl: int | None = Field(default=None, ge=60, le=172800)


class Send(Common):
    route: list[RouteStep] = Field(min_length=1, max_length=10)
    ttl: int | None = Field(default=None, ge=60, le=172800)


class SendSimple(Common):
    phone: str
    text: str
    sender: str | None = None
    ttl: int = Field(default=300, ge=60, le=86400)


class Senders(BaseModel):
    channel: Literal["sms", "all"]


class CheckPhone(BaseModel):
    phone: str | None = None
    phones: list[str] | None = Field(default=None, max_length=500)


class TemplateCreate(BaseModel):
    name: str = Field(max_length=200, description="The title (1042 when missing)")
    text: str
    channels: list[str] = []
    group_url: str | None = None
    comment: str | None = None


class TemplateChange(BaseModel):
    id: str
    options: dict[str, Any]


class MessageStatus(BaseModel):
    id: str | None = Field(default=None, description="A message id (uuid)")
    ids: list[str] | None = Field(default=None, max_length=1000, description="Message ids")
    custom_id: str | None = Field(default=None, max_length=200)


class TemplateId(BaseModel):
    id: str


def body(model: type[BaseModel] | Any, *, array: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a JSON request body described by ``model``."""
    schema = _inline(model.model_json_schema())
    if array:
        schema = {"type": "array", "maxItems": 1000, "items": schema}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.rsplit("/", 1)[1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result
