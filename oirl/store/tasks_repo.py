"""Repository for tasks and their candidate prompts (no maths, no HTTP)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from oirl.store.logs import link_prompts, upsert_prompts
from oirl.store.models import Prompt, Task, TaskPrompt


def list_tasks(session: Session) -> list[Task]:
    return list(session.execute(select(Task).order_by(Task.name)).scalars())


def get_task(session: Session, name: str) -> Task | None:
    return session.execute(select(Task).where(Task.name == name)).scalar_one_or_none()


def task_names(session: Session) -> list[str]:
    return list(session.execute(select(Task.name).order_by(Task.name)).scalars())


def create_task(session: Session, name: str, llm: str | None = None, description: str = "",
                prompts: list[str] | None = None) -> Task:
    """Insert a task (the caller checks it does not exist) with ``prompts`` as active candidates."""
    task = Task(name=name, llm=llm, description=description, settings={})
    session.add(task)
    session.flush()
    if prompts:
        ids = upsert_prompts(session, prompts)
        link_prompts(session, task.id, [ids[p] for p in prompts])
    return task


def task_prompts(session: Session, task_id: int, active_only: bool = False) -> list[tuple[Prompt, bool]]:
    """The task's prompts with their active flag, by prompt id."""
    stmt = (select(Prompt, TaskPrompt.active).join(TaskPrompt, TaskPrompt.prompt_id == Prompt.id)
            .where(TaskPrompt.task_id == task_id).order_by(Prompt.id))
    if active_only:
        stmt = stmt.where(TaskPrompt.active.is_(True))
    return [(p, bool(a)) for p, a in session.execute(stmt).all()]


def add_prompt(session: Session, task_id: int, text: str | None = None, prompt_id: int | None = None,
               name: str | None = None, active: bool = True) -> tuple[Prompt, bool, bool] | None:
    """Make a prompt (by text, registered if new, or by id) a candidate of a task.

    Returns (prompt, its active flag in the task, whether it was the task's already), or None
    for an unknown ``prompt_id``. A prompt already linked keeps its flag (idempotent)."""
    if prompt_id is None:
        prompt_id = upsert_prompts(session, [text], names={text: name} if name else None)[text]
    prompt = session.get(Prompt, prompt_id)
    if prompt is None:
        return None
    existed = session.get(TaskPrompt, (task_id, prompt_id)) is not None
    link_prompts(session, task_id, [prompt_id], active=active)
    session.flush()
    return prompt, bool(session.get(TaskPrompt, (task_id, prompt_id)).active), existed


def set_prompt_active(session: Session, task_id: int, prompt_id: int, active: bool) -> bool:
    """Activate or deactivate a task's prompt; False if the prompt is not one of the task's."""
    row = session.get(TaskPrompt, (task_id, prompt_id))
    if row is None:
        return False
    row.active = active
    session.flush()
    return True



def set_task_setting(session: Session, name: str, key: str, value) -> Task | None:
    """Store one JSON-serialisable setting of a task (None: no such task)."""
    task = get_task(session, name)
    if task is not None:
        task.settings = {**(task.settings or {}), key: value}  # a new dict, so the JSON column is dirty
    return task
