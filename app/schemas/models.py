"""GET /v1/models, promotion and rollback."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oirl.validation import SafeText, TaskName, UTCDateTime


class ModelVersionOut(BaseModel):
    version: int
    task: str | None = Field(description="The task it was trained for (null: made before tasks existed).")
    created_at: UTCDateTime
    aliases: list[str]
    backend: str
    params: dict[str, Any]
    embedder: str
    embedder_revision: str
    library_versions: dict[str, Any]
    data_snapshot: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Held-out numbers; `gate`: metric, held-out queries, challenger "
                                                "and champion values, 95% interval of the difference, verdict.")
    artefact_sha256: str
    job_id: str | None


class ModelList(BaseModel):
    aliases: dict[str, dict[str, int]] = Field(description="Task -> alias name -> version.")
    serving: dict[str, int] = Field(description="Task -> version this worker is serving right now.")
    versions: list[ModelVersionOut] = Field(description="Newest first.")


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = Field(False, description="Skip the gate (not worse than the champion on the same held-out split).")
    reason: SafeText = Field("", max_length=200)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName | None = Field(None, description="Whose champion to roll back (default: the default task).")
    reason: SafeText = Field("", max_length=200)


class AliasMoveOut(BaseModel):
    task: str
    alias: str
    version: int = Field(description="Where the alias points now.")
    previous: int | None = Field(description="Where it pointed before.")
