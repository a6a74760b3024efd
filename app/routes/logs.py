"""POST /v1/logs: idempotent ingest of observations (the same validation as `oirl data import`)."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.logs import LogsImported, LogsIn
from oirl.datasets import userlogs
from oirl.store.engine import transaction
from oirl.store.logs import LlmMismatch, import_observations
from oirl.tasks import TaskError
from oirl.validation import check_length

router = APIRouter(prefix="/v1/logs", tags=["logs"])
MAX_LISTED = 50


@router.post("", response_model=LogsImported, dependencies=[AdminDep],
             summary="Add observations; re-sending the same rows adds nothing",
             responses=problems(422, *AUTH))
async def ingest(body: LogsIn, service: ServiceDep) -> LogsImported:
    settings = service.settings
    if len(body.rows) > settings.max_log_rows:
        raise ProblemError(422, f"{len(body.rows)} rows, over the limit of {settings.max_log_rows} per request "
                                "(OIRL_MAX_LOG_ROWS)")
    # The same length limits as /v1/select and /v1/prompts: a logged prompt becomes a candidate.
    too_long = [(n, why) for n, r in enumerate(body.rows)
                for why in (check_length(r.query, settings.max_query_chars, "query", "MAX_QUERY_CHARS"),
                            check_length(r.prompt, settings.max_prompt_chars, "prompt", "MAX_PROMPT_CHARS")) if why]
    if too_long:
        raise ProblemError(422, f"{len(too_long)} field(s) over a length limit, nothing imported: "
                                + "; ".join(f"rows.{n}.{why}" for n, why in too_long[:3]),
                           errors=[{"loc": ["rows", str(n)], "msg": why} for n, why in too_long[:MAX_LISTED]])
    task = body.task
    if task is None and not any(r.task for r in body.rows):
        try:
            task = await run_in_threadpool(service.resolve_task, None)
        except TaskError as exc:
            raise ProblemError(422, f"which task are these logs for? {exc}") from exc
    table = pd.DataFrame([r.model_dump() for r in body.rows])
    try:
        report = userlogs.validate(table, task=task)  # every bad row with its reason, not just the first
    except userlogs.LogFileError as exc:
        raise ProblemError(422, str(exc)) from exc
    if report.problems:
        listed = [{"loc": ["rows", str(p.row - 1)], "msg": p.reason} for p in report.problems[:MAX_LISTED]]
        first = "; ".join(f"rows.{p.row - 1}: {p.reason}" for p in report.problems[:3])
        more = f" (and {len(report.problems) - 3} more)" if len(report.problems) > 3 else ""
        raise ProblemError(422, f"{len(report.problems)} of {report.total} rows invalid, nothing imported: "
                                f"{first}{more}", errors=listed)

    def write():
        with transaction(service.factory) as s:
            return import_observations(s, report.rows, source="api:/v1/logs")

    try:
        result = await run_in_threadpool(write)  # a big insert must not block the event loop
    except LlmMismatch as exc:
        raise ProblemError(422, str(exc)) from exc
    service.catalog.refresh(force=True)  # new prompt texts became candidates of their task
    return LogsImported(rows=result.rows, inserted=result.inserted, already_present=result.already_present)
