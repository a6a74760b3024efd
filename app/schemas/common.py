"""Shapes shared by several routes: the problem document and job status."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details; served as ``application/problem+json``."""

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem (the HTTP reason).")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What exactly is wrong with this request, in words.")
    instance: str | None = Field(None, description="The request path.")
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field problems, when there are several.")


JobStatus = Literal["queued", "running", "succeeded", "failed"]


class JobOut(BaseModel):
    id: str
    kind: str
    status: JobStatus
    progress: float = Field(description="0..1, as reported by the job.")
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = Field(None, description="Why the job failed (present only when status is failed).")
    created_at: datetime
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None


class JobAccepted(BaseModel):
    id: str = Field(description="Job id; poll the `status_url` until status is succeeded or failed.")
    status: JobStatus
    status_url: str
