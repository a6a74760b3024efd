"""POST /v1/logs: idempotent ingest of (query, prompt, correct, llm) outcomes."""

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
from oirl.store.logs import import_outcomes

router = APIRouter(prefix="/v1/logs", tags=["logs"])
MAX_LISTED = 50


@router.post("", response_model=LogsImported, dependencies=[AdminDep],
             summary="Add prompting outcomes; re-sending the same rows adds nothing",
             responses=problems(422, *AUTH))
async def ingest(body: LogsIn, service: ServiceDep) -> LogsImported:
    limit = service.settings.max_log_rows
    if not body.rows:
        raise ProblemError(422, "rows is empty")
    if len(body.rows) > limit:
        raise ProblemError(422, f"{len(body.rows)} rows, over the limit of {limit} per request (OIRL_MAX_LOG_ROWS)")
    table = pd.DataFrame([r.model_dump(exclude_none=True) for r in body.rows])
    report = userlogs.validate(table)  # every bad row with its reason, not just the first
    if report.problems:
        listed = [{"loc": ["rows", str(p.row - 1)], "msg": p.reason} for p in report.problems[:MAX_LISTED]]
        first = "; ".join(f"rows.{p.row - 1}: {p.reason}" for p in report.problems[:3])
        more = f" (and {len(report.problems) - 3} more)" if len(report.problems) > 3 else ""
        raise ProblemError(422, f"{len(report.problems)} of {report.total} rows invalid, nothing imported: "
                                f"{first}{more}", errors=listed)

    def write():
        with transaction(service.factory) as s:
            return import_outcomes(s, report.rows, source="api:/v1/logs")

    result = await run_in_threadpool(write)  # a big insert must not block the event loop
    service.prompts.refresh(force=True)  # new prompt texts became registered prompts
    return LogsImported(rows=result.rows, inserted=result.inserted, already_present=result.already_present)
