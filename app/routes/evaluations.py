"""POST /v1/evaluations, GET /v1/evaluations (recent) and /{id} with its plot: offline evaluation as a job."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.common import JobAccepted, JobIdPath
from app.schemas.jobs import EvaluationList, EvaluationOut
from oirl.jobs import EVALUATION, EvaluationParams
from oirl.store import jobs_repo
from oirl.tasks import TaskError

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])


def _job(service, eval_id: str):
    with service.factory() as s:
        job = jobs_repo.get_job(s, eval_id)
    if job is None or job.kind != EVALUATION:
        raise ProblemError(404, f"no evaluation {eval_id}")
    return job


@router.post("", response_model=JobAccepted, status_code=202, dependencies=[AdminDep],
             responses=problems(404, 422, *AUTH), summary="Start an offline evaluation of a task (a background job)")
def start(body: EvaluationParams, service: ServiceDep) -> JobAccepted:
    # The body *is* the library's EvaluationParams: `oirl evaluate` takes the same fields.
    try:
        job_id = service.submit_evaluation(body)
    except TaskError as exc:
        raise ProblemError(404 if body.task else 422, str(exc)) from exc
    return JobAccepted(id=job_id, status="queued", status_url=f"/v1/evaluations/{job_id}")


def evaluation_out(job) -> EvaluationOut:
    result = job.result or {}
    done = job.status == "succeeded"
    return EvaluationOut(id=job.id, kind=job.kind, status=job.status, progress=job.progress, params=job.params or {},
                         result=None, error=job.error, created_at=job.created_at, started_at=job.started_at,
                         heartbeat_at=job.heartbeat_at, finished_at=job.finished_at,
                         report=result.get("report") if done else None,
                         plot_url=f"/v1/evaluations/{job.id}/plot.png" if done else None)


@router.get("", response_model=EvaluationList, summary="Recent evaluations, newest first (with their tables)")
def list_evaluations(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> EvaluationList:
    with service.factory() as s:
        return EvaluationList(evaluations=[evaluation_out(j) for j in jobs_repo.list_jobs(s, EVALUATION, limit)])


@router.get("/{eval_id}", response_model=EvaluationOut, responses=problems(404, 422),
            summary="Status; once succeeded, the metrics table and a link to its plot")
def get(eval_id: JobIdPath, service: ServiceDep) -> EvaluationOut:
    return evaluation_out(_job(service, eval_id))


@router.get("/{eval_id}/plot.png", response_class=Response, summary="The evaluation's chart (PNG)",
            responses={200: {"content": {"image/png": {}}}, **problems(404, 409, 422)})
def plot(eval_id: JobIdPath, service: ServiceDep) -> Response:
    job = _job(service, eval_id)
    if job.status != "succeeded":
        raise ProblemError(409, f"evaluation {eval_id} is {job.status}; the plot exists once it has succeeded")
    return Response(base64.b64decode(job.result["plot_png_base64"]), media_type="image/png",
                    headers={"Cache-Control": "max-age=86400, immutable"})
