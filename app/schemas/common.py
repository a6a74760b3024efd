"""Shapes shared by several routes: the problem document and job status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field

from oirl.validation import DB_INT_MAX, UTCDateTime, check_text


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
    created_at: UTCDateTime
    started_at: UTCDateTime | None = None
    heartbeat_at: UTCDateTime | None = None
    finished_at: UTCDateTime | None = None


class JobAccepted(BaseModel):
    id: str = Field(description="Job id; poll the `status_url` until status is succeeded or failed.")
    status: JobStatus
    status_url: str


# Path and query parameters, checked at the edge like body fields (oirl.validation): an id past the
# store's INTEGER range or a name with a NUL is a 422, never a database error.
VersionPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="Model version number.")]
IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
NamePath = Annotated[str, Path(min_length=1, max_length=64), AfterValidator(check_text)]
JobIdPath = Annotated[str, Path(min_length=1, max_length=64), AfterValidator(check_text)]
TaskQuery = Annotated[str | None, Query(min_length=1, max_length=64, description="Only this task."),
                      AfterValidator(lambda v: v if v is None else check_text(v))]
