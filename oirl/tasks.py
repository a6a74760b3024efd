"""Which task a request or command means: the one named, else the default, else the only one."""

from __future__ import annotations

from dataclasses import asdict

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from oirl.datasets.userlogs import TASK_PATTERN
from oirl.select.explore import GREEDY, Exploration
from oirl.store import tasks_repo
from oirl.validation import NonEmptyText, SafeText


class TaskError(ValueError):
    """No such task, or none named where several exist; ``str()`` is fit for a user."""


def resolve_task(factory, name: str | None, default: str | None = None) -> str:
    """The task name to use: ``name``, else ``default`` (settings), else the store's only task."""
    with factory() as s:
        names = tasks_repo.task_names(s)
    return choose_task(names, name, default)


def choose_task(names: list[str], name: str | None, default: str | None = None) -> str:
    """``resolve_task`` over a known list of task names (the service's cached catalog)."""
    chosen = name or default
    if chosen is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise TaskError("the store has no tasks yet: import logs (`oirl data import FILE --task NAME`) "
                            "or create one (`oirl tasks create NAME`)")
        raise TaskError(f"name a task: the store has {len(names)} ({', '.join(names)}); "
                        "or set OIRL_DEFAULT_TASK")
    if chosen not in names:
        raise TaskError(f"task {chosen!r} does not exist (tasks: {', '.join(names) or 'none yet'})")
    return chosen


class TaskExists(TaskError):
    pass


TASK_NAME_PATTERN = TASK_PATTERN.pattern  # one rule for names given here and in imported logs


@dataclass(config=ConfigDict(extra="forbid"))
class TaskSpec:
    """A new task: the request body of ``POST /v1/tasks`` and the arguments of ``oirl tasks create``."""

    name: str = Field(pattern=TASK_NAME_PATTERN, description="1-64 characters: a-z, 0-9, '_', '.', '-'.")
    llm: SafeText | None = Field(None, max_length=128, description="The LLM the task serves (requests for another "
                                                              "LLM are refused); default: not declared.")
    description: SafeText = Field("", max_length=2000)
    prompts: list[NonEmptyText] = Field(default_factory=list, max_length=256,
                               description="Candidate prompt texts, registered as active.")


def create_task(factory, spec: TaskSpec, max_prompt_chars: int = 8_000) -> None:
    from oirl.store.engine import transaction

    for n, p in enumerate(spec.prompts):
        if not p.strip() or len(p) > max_prompt_chars:
            raise TaskError(f"prompts.{n} is empty or over {max_prompt_chars:,} characters")
    with transaction(factory) as s:
        if tasks_repo.get_task(s, spec.name) is not None:
            raise TaskExists(f"task {spec.name!r} already exists")
        tasks_repo.create_task(s, spec.name, spec.llm, spec.description, list(dict.fromkeys(spec.prompts)))


def exploration_of(task) -> Exploration:
    """A task row's exploration setting (greedy when none was set)."""
    stored = (task.settings or {}).get("exploration")
    return Exploration(**stored) if stored else GREEDY


def set_exploration(factory, name: str, exploration: Exploration) -> Exploration:
    """Change a task's exploration; every worker picks it up with its task catalog (within seconds)."""
    from dataclasses import asdict

    from oirl.store.engine import transaction

    with transaction(factory) as s:
        if tasks_repo.set_task_setting(s, name, "exploration", asdict(exploration)) is None:
            raise TaskError(f"task {name!r} does not exist")
    return exploration


def describe_tasks(factory, registry, name: str | None = None) -> list[dict]:
    """Every task (or one) with its prompts, aliases and the gate numbers of its champion and challenger."""
    from oirl.store.logs import observation_counts

    with factory() as s:
        rows = [t for t in tasks_repo.list_tasks(s) if name is None or t.name == name]
        counts = observation_counts(s)
        prompts = {t.id: tasks_repo.task_prompts(s, t.id) for t in rows}
    aliases = registry.aliases()
    out = []
    for t in rows:
        models = {}
        for alias, version in aliases.get(t.name, {}).items():
            info = registry.get(version)
            models[alias] = {"version": version, "created_at": info.created_at, "gate": info.gate,
                             "data_scope": info.data_snapshot}
        out.append({"name": t.name, "llm": t.llm, "description": t.description, "created_at": t.created_at,
                    "exploration": asdict(exploration_of(t)),
                    "n_observations": counts.get(t.id, 0),
                    "prompts": [{"id": p.id, "text": p.text, "name": p.name, "active": a} for p, a in prompts[t.id]],
                    "champion": models.get("champion"), "challenger": models.get("challenger")})
    return out
