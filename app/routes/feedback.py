"""POST /v1/feedback: the judgement of a served decision becomes an observation with its propensity."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.feedback import FeedbackBatchIn, FeedbackBatchOut, FeedbackOut
from app.service import Service
from oirl.feedback import HTTP_STATUS, Feedback, FeedbackResult, record_feedback, seconds_since_issued

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


def _judge(service: Service, items: list[Feedback]) -> list[FeedbackResult]:
    retention = service.settings.decision_retention_days
    results = record_feedback(service.factory, items, retention)
    unknown = [n for n, r in enumerate(results) if r.status == "unknown"]
    if unknown:
        # The decision may have been made a moment ago: still queued in this worker's log, or being written
        # right now. flush() waits for a write in flight and writes what is queued; then look again.
        # (Checking whether anything is queued first would race with a write that finishes in between.)
        if not service.decisions.flush():
            raise ProblemError(503, "the store is not accepting writes right now; the decisions judged here may "
                                    "not be stored yet: try again shortly", headers={"Retry-After": "2"})
        again = record_feedback(service.factory, [items[n] for n in unknown], retention)
        for n, r in zip(unknown, again, strict=True):
            results[n] = r
        _wait_for_other_replicas(service, items, results)
    return results


def _wait_for_other_replicas(service: Service, items: list[Feedback], results: list[FeedbackResult]) -> None:
    """A decision made a moment ago by another replica reaches the store at that replica's next flush:
    look again until every unknown id is older than two flush intervals (plus a second of clock skew
    between machines), then it really is unknown. Ids issued long ago are answered at once."""
    window = 2 * service.settings.decision_flush_seconds + 1.0
    while True:
        recent = [n for n, r in enumerate(results) if r.status == "unknown"
                  and (age := seconds_since_issued(items[n].decision_id)) is not None and -1.0 <= age < window]
        if not recent:
            return
        time.sleep(min(0.1, window))
        again = record_feedback(service.factory, [items[n] for n in recent], service.settings.decision_retention_days)
        for n, r in zip(recent, again, strict=True):
            results[n] = r


@router.post("", response_model=FeedbackOut, dependencies=[AdminDep],
             responses=problems(404, 409, 410, 422, *AUTH), summary="Judge one decision (idempotent)")
async def feedback(body: Feedback, service: ServiceDep) -> FeedbackOut:
    (result,) = await run_in_threadpool(_judge, service, [body])
    if HTTP_STATUS[result.status] >= 400:
        raise ProblemError(HTTP_STATUS[result.status], f"decision {result.decision_id!r}: {result.status}: "
                                                       f"{result.detail}")
    return FeedbackOut(decision_id=result.decision_id, status=result.status, detail=result.detail)


@router.post("/batch", response_model=FeedbackBatchOut, dependencies=[AdminDep], responses=problems(422, *AUTH),
             summary="Judge many decisions; each item's status says what happened to it")
async def feedback_batch(body: FeedbackBatchIn, service: ServiceDep) -> FeedbackBatchOut:
    limit = service.settings.max_log_rows
    if len(body.items) > limit:
        raise ProblemError(422, f"{len(body.items)} items, over the limit of {limit} per request (OIRL_MAX_LOG_ROWS)")
    results = await run_in_threadpool(_judge, service, body.items)
    out = [FeedbackOut(decision_id=r.decision_id, status=r.status, detail=r.detail) for r in results]
    counts = {s: sum(r.status == s for r in results) for s in ("recorded", "already_recorded")}
    return FeedbackBatchOut(results=out, refused=len(out) - sum(counts.values()), **counts)
