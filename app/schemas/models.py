"""GET /v1/models, promotion and rollback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelVersionOut(BaseModel):
    version: int
    created_at: datetime
    aliases: list[str]
    backend: str
    params: dict[str, Any]
    embedder: str
    embedder_revision: str
    library_versions: dict[str, Any]
    data_snapshot: dict[str, Any]
    metrics: dict[str, Any]
    artefact_sha256: str
    job_id: str | None


class ModelList(BaseModel):
    aliases: dict[str, int] = Field(description="Alias name -> version.")
    serving: int | None = Field(description="Version this worker is serving right now.")
    versions: list[ModelVersionOut] = Field(description="Newest first.")


class PromoteIn(BaseModel):
    force: bool = Field(False, description="Skip the gate (not worse than the champion on the same held-out split).")
    reason: str = Field("", max_length=200)


class RollbackIn(BaseModel):
    reason: str = Field("", max_length=200)


class AliasMoveOut(BaseModel):
    alias: str
    version: int = Field(description="Where the alias points now.")
    previous: int | None = Field(description="Where it pointed before.")
