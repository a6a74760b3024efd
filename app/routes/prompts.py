"""GET/POST /v1/prompts: the registry of prompt texts, shared by tasks (candidacy is per task:
see /v1/tasks/{name}/prompts)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from app.deps import AdminDep, ServiceDep
from app.errors import ProblemError
from app.routes import AUTH, problems
from app.schemas.prompts import PromptIn, PromptList, PromptOut
from oirl.hashing import text_sha256
from oirl.store import tasks_repo
from oirl.store.engine import transaction
from oirl.store.logs import upsert_prompts
from oirl.store.models import Prompt, Task, TaskPrompt
from oirl.validation import check_length

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])


def _memberships(s, prompt_ids=None) -> dict[int, dict[str, bool]]:
    stmt = select(TaskPrompt.prompt_id, Task.name, TaskPrompt.active).join(Task, Task.id == TaskPrompt.task_id)
    if prompt_ids is not None:
        stmt = stmt.where(TaskPrompt.prompt_id.in_(prompt_ids))
    out: dict[int, dict[str, bool]] = {}
    for pid, task, active in s.execute(stmt).all():
        out.setdefault(pid, {})[task] = bool(active)
    return out


def _out(p: Prompt, tasks: dict[str, bool]) -> PromptOut:
    return PromptOut(id=p.id, text=p.text, name=p.name, created_at=p.created_at, tasks=tasks)


@router.get("", response_model=PromptList, summary="Registered prompts and the tasks they are candidates of")
def list_prompts(service: ServiceDep) -> PromptList:
    with service.factory() as s:
        member = _memberships(s)
        return PromptList(prompts=[_out(p, member.get(p.id, {}))
                                   for p in s.execute(select(Prompt).order_by(Prompt.id)).scalars()])


@router.post("", response_model=PromptOut, status_code=201, dependencies=[AdminDep],
             summary="Register a prompt (idempotent: an existing text answers 200 with its id)",
             responses={200: {"model": PromptOut, "description": "Already registered"}, **problems(404, 422, *AUTH)})
def add_prompt(body: PromptIn, service: ServiceDep, response: Response) -> PromptOut:
    too_long = check_length(body.text, service.settings.max_prompt_chars, "text", "MAX_PROMPT_CHARS")
    if too_long:
        raise ProblemError(422, too_long)
    with transaction(service.factory) as s:
        task = tasks_repo.get_task(s, body.task) if body.task else None
        if body.task and task is None:
            raise ProblemError(404, f"task {body.task!r} does not exist (GET /v1/tasks)")
        existed = s.execute(select(Prompt.id).where(Prompt.text_sha256 == text_sha256(body.text))).first()
        pid = upsert_prompts(s, [body.text], names={body.text: body.name} if body.name else None)[body.text]
        if task is not None:
            tasks_repo.add_prompt(s, task.id, prompt_id=pid)
        out = _out(s.get(Prompt, pid), _memberships(s, [pid]).get(pid, {}))
    if existed:
        response.status_code = 200
    service.catalog.refresh(force=True)
    return out
