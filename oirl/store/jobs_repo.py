"""Repository for background jobs: create, claim exactly once, heartbeat, finish, reap.

Claiming is one conditional UPDATE (``... WHERE id = :id AND status = 'queued'``): with
several workers on PostgreSQL, two may pick the same candidate, but only one UPDATE
matches a row, and the loser simply tries the next candidate. On PostgreSQL the candidate
is read with ``FOR UPDATE SKIP LOCKED`` so workers do not even contend.
Every write that changes a running job also checks ``worker`` so a job that the reaper
has failed cannot be resurrected by a late heartbeat from a process that was stuck.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from oirl.store.models import Job, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)


def create_job(session: Session, kind: str, params: dict[str, Any] | None = None) -> Job:
    job = Job(id=str(uuid.uuid4()), kind=kind, status=QUEUED, progress=0.0, params=params or {}, created_at=utcnow())
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def list_jobs(session: Session, kind: str | None = None, limit: int = 50) -> list[Job]:
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return list(session.execute(stmt).scalars())


def claim_next(session: Session, worker: str, kinds: tuple[str, ...] | None = None) -> Job | None:
    """Atomically move the oldest queued job to running for ``worker``; None if there is none."""
    stmt = select(Job.id).where(Job.status == QUEUED).order_by(Job.created_at).limit(5)
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    now = utcnow()
    for job_id in session.execute(stmt).scalars().all():
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == QUEUED)
            .values(status=RUNNING, worker=worker, started_at=now, heartbeat_at=now, progress=0.0)
        ).rowcount
        if claimed == 1:
            session.flush()
            job = session.get(Job, job_id)
            session.refresh(job)
            return job
    return None


def _running(job_id: str, worker: str):
    return update(Job).where(Job.id == job_id, Job.status == RUNNING, Job.worker == worker)


def heartbeat(session: Session, job_id: str, worker: str, progress: float | None = None) -> bool:
    """Touch the job; False means it is no longer ours (reaped), so the caller should stop."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    return session.execute(_running(job_id, worker).values(**values)).rowcount == 1


def finish(session: Session, job_id: str, worker: str, result: dict[str, Any] | None = None,
           error: str | None = None) -> bool:
    status = FAILED if error is not None else SUCCEEDED
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "heartbeat_at": utcnow(), "error": error}
    if error is None:
        values.update(progress=1.0, result=result or {})
    return session.execute(_running(job_id, worker).values(**values)).rowcount == 1


def reap_stale(session: Session, stale_after: timedelta, now: datetime | None = None) -> int:
    """Fail running jobs whose heartbeat is older than ``stale_after`` (their worker died)."""
    now = now or utcnow()
    where = (Job.status == RUNNING, Job.heartbeat_at < now - stale_after)
    return _fail(session, where, now, "worker stopped sending heartbeats (crash or restart); the job did not "
                                      "finish and nothing it wrote is in use")


def reap_worker(session: Session, worker: str) -> int:
    """Fail every job still marked running by ``worker`` (called when that worker restarts)."""
    return _fail(session, (Job.status == RUNNING, Job.worker == worker), utcnow(),
                 "worker restarted while the job was running; nothing it wrote is in use")


def _fail(session: Session, where: tuple, now: datetime, error: str) -> int:
    """Fail the jobs matching ``where`` and take back what they registered: a worker killed right after
    its version row committed (job at progress 1.0) left that version as the task's challenger, and it
    promoted. The version row stays (its history), but no alias points at it and ``promote`` refuses it
    without force (``ModelRegistry.promote``: its job failed)."""
    from oirl.store.models import Alias, ModelVersion
    from oirl.store.registry_repo import CHALLENGER

    ids = list(session.execute(update(Job).where(*where).values(status=FAILED, finished_at=now, error=error)
                               .returning(Job.id)).scalars())
    if not ids:
        return 0
    made = select(ModelVersion.id).where(ModelVersion.job_id.in_(ids))
    session.execute(delete(Alias).where(Alias.name == CHALLENGER, Alias.version_id.in_(made)))
    return len(ids)


def counts(session: Session) -> dict[tuple[str, str], int]:
    from sqlalchemy import func

    rows = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
    return {(k, s): n for k, s, n in rows}
