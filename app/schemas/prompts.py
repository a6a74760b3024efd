"""GET/POST /v1/prompts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="Exact prompt text (appended to the query); identity is the exact text.")
    name: str | None = Field(None, max_length=128, description="Optional short name.")
    task: str | None = Field(None, description="Also make it an active candidate of this task.")


class PromptOut(BaseModel):
    id: int
    text: str
    name: str | None
    created_at: datetime
    tasks: dict[str, bool] = Field(default_factory=dict, description="Tasks it is a prompt of -> active there.")


class PromptList(BaseModel):
    prompts: list[PromptOut]
