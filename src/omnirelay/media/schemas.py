"""Wire shapes of `media/upload` (seed 004)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SlotRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # "advisable to specify": without it, the type follows the file name's extension
    contentType: str | None = Field(default=None, max_length=255, examples=["application/pdf"])
    filename: str = Field(min_length=1, max_length=255, examples=["contract.pdf"])


class SlotOut(BaseModel):
    result: str = "success"
    id: str  # the slot's id (omnirelay's addition)
    url: str  # POST multipart/form-data here: every field of `fields`, then `file`
    fields: dict[str, str]
    mediaUrl: str  # the direct link the file will have
    expiresAt: str  # ISO 8601, UTC (omnirelay's addition)
    maxSize: int  # bytes (omnirelay's addition)
