"""GET /healthz and /readyz."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models: dict[str, int] = {}  # task -> the champion version this worker serves
    embedder: str | None
    reasons: list[str]
    decision_log: dict = {}  # this worker's queue: queued, written, dropped, last_error
