"""GET /v1/live: selections per second, fallback and exploration share, cache hit rate, latency."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import ServiceDep
from app.errors import ProblemError
from app.routes import problems
from app.schemas.live import LiveOut
from oirl.store.judged import judged_accuracy

router = APIRouter(prefix="/v1", tags=["health"])
SCOPE = "this worker's counters (all tasks) over about the last minute (less just after it started)"


def _judged(factory, task: str | None) -> dict[str, list[dict]]:
    with factory() as s:  # from the store: every worker answers the same
        return judged_accuracy(s, task=task)


@router.get("/live", response_model=LiveOut, responses=problems(404),
            summary="Live serving figures and judged accuracy per task (the console's Live page)")
async def live(service: ServiceDep, task: str | None = None) -> LiveOut:
    names = await run_in_threadpool(service.catalog.names)
    if task is not None and task not in names:
        raise ProblemError(404, f"task {task!r} does not exist (GET /v1/tasks)")
    figures = service.metrics.live.observe(service.metrics.snapshot())
    serving = {t: m.version for t, m in service.watcher.serving.items() if task in (None, t)}
    found = await run_in_threadpool(_judged, service.factory, task)
    judged = {t: found.get(t, []) for t in ([task] if task else names)}
    return LiveOut(scope=SCOPE, models=serving, judged=judged, **figures)
