"""Admin: retrain as a job, read jobs, promote a version, roll back. All need the admin token."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.common import JobAccepted, JobIdPath, JobOut, VersionPath
from app.schemas.models import AliasMoveOut, PromoteIn, RollbackIn
from oirl.jobs import RetrainParams
from oirl.redact import redact_paths
from oirl.registry import ArtefactChecksumError, PromotionRefused, TaskNotFound, VersionNotFound
from oirl.store import jobs_repo
from oirl.tasks import TaskError

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep])


def job_out(job) -> JobOut:
    error = job.error and redact_paths(job.error)  # rows written before errors were redacted at the source
    return JobOut(id=job.id, kind=job.kind, status=job.status, progress=job.progress, params=job.params or {},
                  result=job.result, error=error, created_at=job.created_at, started_at=job.started_at,
                  heartbeat_at=job.heartbeat_at, finished_at=job.finished_at)


@router.post("/retrain", response_model=JobAccepted, status_code=202, responses=problems(404, 422, *AUTH),
             summary="Train a task's challenger on its logged training observations (a background job)")
def retrain(body: RetrainParams, service: ServiceDep) -> JobAccepted:
    # The body *is* the library's RetrainParams: the CLI's `oirl train` takes the same fields.
    try:
        job_id = service.submit_retrain(body)
    except TaskError as exc:
        raise ProblemError(404 if body.task else 422, str(exc)) from exc
    return JobAccepted(id=job_id, status="queued", status_url=f"/admin/jobs/{job_id}")


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problems(404, 422, *AUTH), summary="A job's status")
def get_job(job_id: JobIdPath, service: ServiceDep) -> JobOut:
    with service.factory() as s:
        job = jobs_repo.get_job(s, job_id)
        if job is None:
            raise ProblemError(404, f"no job {job_id}")
        return job_out(job)


@router.post("/models/{version}/promote", response_model=AliasMoveOut, responses=problems(404, 409, 422, *AUTH),
             summary="Make a version the champion (gated: not worse than the champion on the same split)")
async def promote(version: VersionPath, service: ServiceDep, body: PromoteIn | None = None) -> AliasMoveOut:
    body = body or PromoteIn()
    try:
        # Hashing the artefact directory is file I/O: keep it off the event loop.
        move = await run_in_threadpool(service.registry.promote, version, force=body.force, reason=body.reason)
    except VersionNotFound as exc:
        raise ProblemError(404, str(exc)) from exc
    except (PromotionRefused, ArtefactChecksumError) as exc:
        raise ProblemError(409, str(exc)) from exc
    await run_in_threadpool(service.watcher.refresh)  # this worker swaps now; the others within a poll
    return AliasMoveOut(task=move.task, alias=move.alias, version=move.version, previous=move.previous)


@router.post("/models/rollback", response_model=AliasMoveOut, responses=problems(404, 409, 422, *AUTH),
             summary="Return a task's champion to the version before its last promotion")
async def rollback(service: ServiceDep, body: RollbackIn | None = None) -> AliasMoveOut:
    body = body or RollbackIn()
    try:
        task = await run_in_threadpool(service.resolve_task, body.task)
        move = await run_in_threadpool(service.registry.rollback, task, body.reason)
    except (TaskError, TaskNotFound) as exc:
        raise ProblemError(404 if body.task else 422, str(exc)) from exc
    except (PromotionRefused, ArtefactChecksumError) as exc:  # the previous champion's files are damaged
        raise ProblemError(409, str(exc)) from exc
    await run_in_threadpool(service.watcher.refresh)
    return AliasMoveOut(task=move.task, alias=move.alias, version=move.version, previous=move.previous)
