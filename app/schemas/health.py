"""GET /healthz and /readyz."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    degraded: bool = Field(False, description="True when a task serves an older model than its champion, "
                                              "because the champion failed to load (see `reasons`).")
    models: dict[str, int] = Field({}, description="Task -> the model version this worker serves.")
    embedder: str | None
    reasons: list[str] = Field(description="Why it is degraded (empty when all is well).")
    decision_log: dict = {}  # this worker's queue: queued, written, dropped, last_error
