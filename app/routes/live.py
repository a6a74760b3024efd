"""GET /v1/live: selections per second, fallback and exploration share, cache hit rate, latency
(this worker's counters), each task's decisions of the last minute and its judged accuracy (the store)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import ServiceDep
from app.errors import STORE_ERRORS, ProblemError
from app.routes import problems
from app.schemas.live import LiveOut
from oirl.store.live import decision_rates, judged_accuracy

router = APIRouter(prefix="/v1", tags=["health"])
IDLE = {"decisions": 0, "per_second": 0.0, "fallback_share": None, "exploration_share": None}
STORE_DOWN = "the store is not reachable right now: per-task rates and judged accuracy are missing"
SCOPE = "this worker's counters (all tasks) over about the last minute (less just after it started)"


def _from_store(factory, task: str | None) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    with factory() as s:  # every worker's decisions and feedback: each worker answers the same
        return decision_rates(s, task=task), judged_accuracy(s, task=task)


@router.get("/live", response_model=LiveOut, responses=problems(404),
            summary="Live serving figures and judged accuracy per task (the console's Live page)")
async def live(service: ServiceDep, task: str | None = None) -> LiveOut:
    names = await run_in_threadpool(service.catalog.names)
    if task is not None and task not in names:
        raise ProblemError(404, f"task {task!r} does not exist (GET /v1/tasks)")
    figures = service.metrics.live.observe(service.metrics.snapshot())
    serving = {t: m.version for t, m in service.watcher.serving.items() if task in (None, t)}
    shown = [task] if task else names
    try:
        rates, judged = await run_in_threadpool(_from_store, service.factory, task)
    except STORE_ERRORS:  # during an outage this worker's own figures are what there is to see
        return LiveOut(scope=SCOPE, models=serving, judged={}, tasks={}, store_error=STORE_DOWN, **figures)
    return LiveOut(scope=SCOPE, models=serving, judged={t: judged.get(t, []) for t in shown},
                   tasks={t: rates.get(t, IDLE) for t in shown}, **figures)
