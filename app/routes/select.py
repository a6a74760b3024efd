"""POST /v1/select and /v1/select/batch: the best prompt per query, no LLM call."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from app.deps import ServiceDep, champion_for
from app.errors import ProblemError
from app.routes import problems
from app.schemas.select import (
    BatchSelectRequest,
    BatchSelectResponse,
    CandidateIn,
    SelectRequest,
    SelectResponse,
)
from app.selection import Candidate, Item
from app.service import Service, TaskView
from oirl.registry import LoadedModel
from oirl.tasks import TaskError
from oirl.validation import check_length

router = APIRouter(prefix="/v1", tags=["selection"])
JSON = "application/json"


def check_query(service: Service, query: str, where: str = "query") -> None:
    # Empty, NUL and surrogate texts were refused by the schema; the length limit is a setting.
    too_long = check_length(query, service.settings.max_query_chars, where, "MAX_QUERY_CHARS")
    if too_long:
        raise ProblemError(422, too_long)


def resolve_task(service: Service, name: str | None) -> TaskView:
    try:
        task = service.serving_task(name)
    except TaskError as exc:
        raise ProblemError(404 if name else 422, str(exc)) from exc
    if task is None:  # deleted between the two reads
        raise ProblemError(404, f"task {name!r} does not exist")
    return task


def resolve_candidates(service: Service, task: TaskView,
                       candidates: list[CandidateIn] | None) -> tuple[Candidate, ...]:
    s = service.settings
    if candidates is None:
        if not task.active:
            raise ProblemError(422, f"no candidates given and task {task.name!r} has no active prompts "
                                    f"(POST /v1/tasks/{task.name}/prompts)")
        if len(task.active) > s.max_candidates:  # never a silent cut to the first ones
            raise ProblemError(409, f"task {task.name!r} has {len(task.active)} active prompts, over the limit of "
                                    f"{s.max_candidates} candidates (OIRL_MAX_CANDIDATES): deactivate some "
                                    f"(PATCH /v1/tasks/{task.name}/prompts/{{id}}) or pass `candidates`")
        return task.active
    if len(candidates) > s.max_candidates:
        raise ProblemError(422, f"{len(candidates)} candidates, over the limit of {s.max_candidates} "
                                "(OIRL_MAX_CANDIDATES)")
    out, unknown = [], []
    for n, c in enumerate(candidates):
        if c.id is not None:
            found = service.catalog.by_id(c.id)
            if found is None:
                unknown.append(str(c.id))
            else:
                out.append(found)
        else:
            too_long = check_length(c.text, s.max_prompt_chars, f"candidates.{n}.text", "MAX_PROMPT_CHARS")
            if too_long:
                raise ProblemError(422, too_long)
            out.append(Candidate(service.catalog.id_of(c.text), c.text))
    if unknown:
        raise ProblemError(422, f"unknown prompt id(s): {', '.join(unknown)} (see GET /v1/prompts)")
    return tuple(dict.fromkeys(out))  # the same prompt twice would only duplicate the ranking


def item(task: TaskView, model: LoadedModel, query: str, cands: tuple[Candidate, ...], top_k: int | None,
         llm: str | None, allow_unseen: bool = False) -> Item:
    # The decision's LLM: the one named, else the task's, else the one the serving model was trained on.
    return Item(model, query, cands, top_k, exploration=task.exploration, explorable=task.explorable(cands),
                llm=llm or task.llm or model.bundle.llm, allow_unseen=allow_unseen)


def check_llm(task: TaskView, model: LoadedModel, llm: str | None) -> None:
    if llm is None:
        return
    if task.llm is not None and llm != task.llm:
        raise ProblemError(422, f"task {task.name!r} serves llm {task.llm!r}, not {llm!r}")
    trained_on = model.bundle.llm
    if trained_on is not None and llm != trained_on:
        raise ProblemError(422, f"the serving model v{model.version} of task {task.name!r} was trained on logs "
                                f"of llm {trained_on!r} only, not {llm!r}")


@router.post("/select", response_model=SelectResponse, summary="Best prompt for one query",
             responses={200: {"headers": {"X-Model-Version": {"schema": {"type": "integer"}}}},
                        **problems(404, 409, 422, 503)})
async def select(body: SelectRequest, service: ServiceDep) -> Response:
    check_query(service, body.query)
    task = resolve_task(service, body.task)
    model = champion_for(service, task.name)
    check_llm(task, model, body.llm)
    cands = resolve_candidates(service, task, body.candidates)
    answer = await service.selector.select(item(task, model, body.query, cands, body.top_k, body.llm,
                                                body.allow_unseen))
    # Pre-serialised bytes: the cached path skips re-validating and re-encoding the answer.
    return Response(answer.body, media_type=JSON, headers={"X-Model-Version": str(model.version)})


@router.post("/select/batch", response_model=BatchSelectResponse, summary="Best prompt for many queries",
             responses={200: {"headers": {"X-Model-Version": {"schema": {"type": "integer"}}}},
                        **problems(404, 409, 422, 503)})
async def select_batch(body: BatchSelectRequest, service: ServiceDep) -> Response:
    limit = service.settings.max_batch
    if len(body.queries) > limit:
        raise ProblemError(422, f"{len(body.queries)} queries, over the batch limit of {limit} (OIRL_MAX_BATCH)")
    for n, q in enumerate(body.queries):
        check_query(service, q, where=f"queries.{n}")
    task = resolve_task(service, body.task)
    model = champion_for(service, task.name)
    check_llm(task, model, body.llm)
    cands = resolve_candidates(service, task, body.candidates)
    answers = await service.selector.select_many([item(task, model, q, cands, body.top_k, body.llm,
                                                       body.allow_unseen) for q in body.queries])
    tail = json.dumps({"task": task.name, "model_version": model.version}, separators=(",", ":")).encode()
    body_bytes = b'{"results":[' + b",".join(a.body for a in answers) + b"]," + tail[1:]
    return Response(body_bytes, media_type=JSON, headers={"X-Model-Version": str(model.version)})
