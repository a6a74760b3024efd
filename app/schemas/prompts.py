"""GET/POST /v1/prompts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from oirl.validation import NonEmptyText, SafeText, TaskName, UTCDateTime


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: NonEmptyText = Field(description="Exact prompt text (appended to the query), 1 to "
                                           "OIRL_MAX_PROMPT_CHARS characters; identity is the exact text.")
    name: SafeText | None = Field(None, max_length=128, description="Optional short name.")
    task: TaskName | None = Field(None, description="Also make it an active candidate of this task.")


class PromptOut(BaseModel):
    id: int
    text: str
    name: str | None
    created_at: UTCDateTime
    tasks: dict[str, bool] = Field(default_factory=dict, description="Tasks it is a prompt of -> active there.")


class PromptList(BaseModel):
    prompts: list[PromptOut]
