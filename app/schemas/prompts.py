"""GET/POST /v1/prompts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="Exact prompt text (appended to the query); identity is the exact text.")
    name: str | None = Field(None, max_length=128, description="Optional short name.")


class PromptOut(BaseModel):
    id: int
    text: str
    name: str | None
    active: bool
    created_at: datetime


class PromptList(BaseModel):
    prompts: list[PromptOut]
