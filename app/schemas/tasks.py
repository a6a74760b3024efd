"""GET/POST /v1/tasks and a task's prompts. The creation body is the library's ``TaskSpec``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oirl.select.explore import Exploration
from oirl.validation import DbInt, NonEmptyText, SafeText, UTCDateTime


class TaskPromptOut(BaseModel):
    id: int
    text: str
    name: str | None
    active: bool = Field(description="Active prompts are the task's default candidates.")


class AliasOut(BaseModel):
    version: int
    created_at: UTCDateTime
    gate: dict[str, Any] = Field(description="The promotion gate: metric, held-out queries, challenger and "
                                             "champion values, 95% interval of the difference, verdict.")
    data_scope: dict[str, Any]


class TaskOut(BaseModel):
    name: str
    llm: str | None = Field(description="The LLM the task serves; null: not declared.")
    description: str
    created_at: UTCDateTime
    n_observations: int
    exploration: Exploration = Field(description="How selections explore (PUT /v1/tasks/{name}/exploration).")
    prompts: list[TaskPromptOut]
    champion: AliasOut | None
    challenger: AliasOut | None


class TaskList(BaseModel):
    tasks: list[TaskOut]


class TaskPromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DbInt | None = Field(None, description="A registered prompt (GET /v1/prompts) to add to the task.")
    text: NonEmptyText | None = Field(None, description="A prompt text, registered if new "
                                                         "(1 to OIRL_MAX_PROMPT_CHARS characters).")
    name: SafeText | None = Field(None, max_length=128)
    active: bool = True


class TaskPromptPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool = Field(description="false: no longer a default candidate (it stays registered).")


class AliasEvent(BaseModel):
    version: int = Field(description="Where the alias pointed after the move.")
    previous: int | None = Field(description="Where it pointed before.")
    reason: str = Field(description="promoted / forced / rollback, with the admin's reason if given.")
    at: UTCDateTime


class AliasHistory(BaseModel):
    task: str
    alias: str
    events: list[AliasEvent] = Field(description="Newest first.")
