"""GET/POST /v1/tasks, and a task's candidate prompts (add, activate, deactivate)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.common import IdPath, NamePath
from app.schemas.tasks import AliasHistory, TaskList, TaskOut, TaskPromptIn, TaskPromptOut, TaskPromptPatch
from oirl.registry import TaskNotFound
from oirl.select.explore import Exploration
from oirl.store import tasks_repo
from oirl.store.engine import transaction
from oirl.store.models import Prompt
from oirl.tasks import TaskError, TaskExists, TaskSpec, create_task, describe_tasks, set_exploration
from oirl.validation import check_length

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def _task_id(s, name: str) -> int:
    row = tasks_repo.get_task(s, name)
    if row is None:
        raise ProblemError(404, f"task {name!r} does not exist (GET /v1/tasks)")
    return row.id


@router.get("", response_model=TaskList, summary="Tasks: prompts, LLM, champion and challenger with their gates")
async def list_tasks(service: ServiceDep) -> TaskList:
    return TaskList(tasks=await run_in_threadpool(describe_tasks, service.factory, service.registry))


@router.get("/{name}", response_model=TaskOut, responses=problems(404, 422), summary="One task")
async def get_task(name: NamePath, service: ServiceDep) -> TaskOut:
    found = await run_in_threadpool(describe_tasks, service.factory, service.registry, name)
    if not found:
        raise ProblemError(404, f"task {name!r} does not exist (GET /v1/tasks)")
    return TaskOut(**found[0])


@router.get("/{name}/history", response_model=AliasHistory, responses=problems(404, 422),
            summary="A task's alias moves, newest first (promotions, forced promotions, rollbacks)")
def alias_history(name: NamePath, service: ServiceDep, alias: Literal["champion", "challenger"] = "champion",
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> AliasHistory:
    try:
        events = service.registry.history(name, alias, limit)
    except TaskNotFound as exc:
        raise ProblemError(404, str(exc)) from exc
    return AliasHistory(task=name, alias=alias, events=events)


@router.post("", response_model=TaskOut, status_code=201, dependencies=[AdminDep],
             responses=problems(409, 422, *AUTH), summary="Create a task with its candidate prompts")
async def create(body: TaskSpec, service: ServiceDep) -> TaskOut:
    try:
        await run_in_threadpool(create_task, service.factory, body, service.settings.max_prompt_chars)
    except TaskExists as exc:
        raise ProblemError(409, str(exc)) from exc
    except TaskError as exc:
        raise ProblemError(422, str(exc)) from exc
    service.catalog.refresh(force=True)
    return TaskOut(**(await run_in_threadpool(describe_tasks, service.factory, service.registry, body.name))[0])


@router.post("/{name}/prompts", response_model=TaskPromptOut, status_code=201, dependencies=[AdminDep],
             responses={200: {"model": TaskPromptOut, "description": "Already a prompt of the task"},
                        **problems(404, 422, *AUTH)},
             summary="Add a candidate prompt to a task (by id or text; idempotent)")
def add_prompt(name: NamePath, body: TaskPromptIn, service: ServiceDep, response: Response) -> TaskPromptOut:
    if (body.id is None) == (body.text is None):
        raise ProblemError(422, "give exactly one of `id` (a registered prompt) or `text`")
    too_long = body.text and check_length(body.text, service.settings.max_prompt_chars, "text", "MAX_PROMPT_CHARS")
    if too_long:
        raise ProblemError(422, too_long)
    with transaction(service.factory) as s:
        added = tasks_repo.add_prompt(s, _task_id(s, name), body.text, body.id, body.name, body.active)
        if added is None:
            raise ProblemError(404, f"no prompt with id {body.id} (GET /v1/prompts)")
        prompt, active, existed = added
        out = TaskPromptOut(id=prompt.id, text=prompt.text, name=prompt.name, active=active)
    if existed:
        response.status_code = 200
    service.catalog.refresh(force=True)
    return out


@router.patch("/{name}/prompts/{prompt_id}", response_model=TaskPromptOut, dependencies=[AdminDep],
              responses=problems(404, 422, *AUTH), summary="Activate or deactivate one of a task's prompts")
def patch_prompt(name: NamePath, prompt_id: IdPath, body: TaskPromptPatch,
                 service: ServiceDep) -> TaskPromptOut:
    with transaction(service.factory) as s:
        task_id = _task_id(s, name)
        if not tasks_repo.set_prompt_active(s, task_id, prompt_id, body.active):
            raise ProblemError(404, f"prompt {prompt_id} is not a prompt of task {name!r}")
        prompt = s.get(Prompt, prompt_id)
        out = TaskPromptOut(id=prompt.id, text=prompt.text, name=prompt.name, active=body.active)
    service.catalog.refresh(force=True)
    return out


@router.put("/{name}/exploration", response_model=Exploration, dependencies=[AdminDep],
            responses=problems(404, 422, *AUTH), summary="Set how a task explores (greedy, epsilon, softmax)")
def put_exploration(name: NamePath, body: Exploration, service: ServiceDep) -> Exploration:
    try:
        set_exploration(service.factory, name, body)
    except TaskError as exc:
        raise ProblemError(404, str(exc)) from exc
    service.catalog.refresh(force=True)
    return body
