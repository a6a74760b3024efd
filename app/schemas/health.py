"""GET /healthz and /readyz."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    model_version: int | None
    embedder: str | None
    reasons: list[str]
