"""`oirl tasks ...`: named selection problems, their candidate prompts and champions."""

from __future__ import annotations

from typing import Annotated

import typer

from oirl.cli.common import fail, open_store, user_errors
from oirl.select.explore import GREEDY, Exploration

app = typer.Typer(help="Tasks: candidate prompts (active or not), the LLM served, champion and challenger.",
                  no_args_is_help=True)


def _describe(name: str | None = None) -> list[dict]:
    from oirl.registry import ModelRegistry
    from oirl.settings import get_settings
    from oirl.tasks import describe_tasks

    factory = open_store()
    return describe_tasks(factory, ModelRegistry.from_settings(factory, get_settings()), name)


@app.command("list")
def list_cmd() -> None:
    """Every task with its LLM, observation count, prompts and champion."""
    tasks = _describe()
    if not tasks:
        typer.echo("no tasks: `oirl data import FILE --task NAME`, `oirl tasks create NAME` or "
                   "`oirl data import-benchmark`")
    for t in tasks:
        active = sum(p["active"] for p in t["prompts"])
        champ = f"v{t['champion']['version']}" if t["champion"] else "none"
        chall = f"v{t['challenger']['version']}" if t["challenger"] else "none"
        typer.echo(f"{t['name']:<16} llm={t['llm'] or '-':<20} {t['n_observations']:>8,} observations  "
                   f"{active}/{len(t['prompts'])} prompts active  champion {champ}  challenger {chall}")


@app.command("show")
def show_cmd(name: str) -> None:
    """One task: its prompts (with ids) and the gates of its champion and challenger."""
    from oirl.cli.model import describe_gate

    found = _describe(name)
    if not found:
        fail(f"task {name!r} does not exist (`oirl tasks list`)", code=2)
    t = found[0]
    typer.echo(f"task {t['name']}: llm {t['llm'] or 'not declared'}, {t['n_observations']:,} observations"
               f"{' - ' + t['description'] if t['description'] else ''}")
    for p in t["prompts"]:
        typer.echo(f"  [{p['id']:>3}] {'active  ' if p['active'] else 'inactive'} {p['text'][:90]!r}")
    for alias in ("champion", "challenger"):
        m = t[alias]
        typer.echo(f"{alias}: " + (f"v{m['version']}  gate {describe_gate(m['gate'])}" if m else "none"))


@app.command("create")
def create_cmd(name: str,
               llm: Annotated[str | None, typer.Option(help="The LLM this task serves.")] = None,
               description: Annotated[str, typer.Option(help="What the task is.")] = "",
               prompt: Annotated[list[str] | None, typer.Option(
                   "--prompt", "-p", help="A candidate prompt text (repeatable).")] = None) -> None:
    """Create a task with its candidate prompts."""
    from pydantic import ValidationError

    from oirl.tasks import TaskError, TaskSpec, create_task

    try:
        spec = TaskSpec(name=name, llm=llm, description=description, prompts=prompt or [])
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), code=2)
    with user_errors(TaskError):
        create_task(open_store(), spec)
    typer.echo(f"created task {name!r} with {len(spec.prompts)} prompt(s)")


@app.command("add-prompt")
def add_prompt_cmd(name: str, text: str,
                   inactive: Annotated[bool, typer.Option("--inactive", help="Register it inactive.")] = False
                   ) -> None:
    """Add a candidate prompt (by text) to a task."""
    from oirl.settings import get_settings
    from oirl.store import tasks_repo
    from oirl.store.engine import transaction

    limit = get_settings().max_prompt_chars  # the same limit as POST /v1/tasks/{name}/prompts
    if not text.strip() or len(text) > limit:
        fail(f"the prompt text is empty or over the limit of {limit:,} characters", code=2)
    with transaction(open_store()) as s:
        task = tasks_repo.get_task(s, name)
        if task is None:
            fail(f"task {name!r} does not exist (`oirl tasks list`)", code=2)
        prompt, active, existed = tasks_repo.add_prompt(s, task.id, text, active=not inactive)
    state = "already a prompt" if existed else "now a prompt"
    typer.echo(f"prompt {prompt.id} is {state} of task {name!r} ({'active' if active else 'inactive'})")


def _set_active(name: str, prompt_id: int, active: bool) -> None:
    from oirl.store import tasks_repo
    from oirl.store.engine import transaction

    with transaction(open_store()) as s:
        task = tasks_repo.get_task(s, name)
        if task is None:
            fail(f"task {name!r} does not exist (`oirl tasks list`)", code=2)
        if not tasks_repo.set_prompt_active(s, task.id, prompt_id, active):
            fail(f"prompt {prompt_id} is not a prompt of task {name!r} (`oirl tasks show {name}`)", code=2)
    typer.echo(f"task {name}: prompt {prompt_id} {'activated' if active else 'deactivated'}")


@app.command("activate")
def activate_cmd(name: str, prompt_id: int) -> None:
    """Make one of a task's prompts a default candidate again."""
    _set_active(name, prompt_id, True)


@app.command("deactivate")
def deactivate_cmd(name: str, prompt_id: int) -> None:
    """Stop offering one of a task's prompts by default (it stays registered)."""
    _set_active(name, prompt_id, False)


@app.command("explore")
def explore_cmd(name: str,
                mode: Annotated[str, typer.Option(help="greedy (no exploration), epsilon or softmax.")] = GREEDY.mode,
                epsilon: Annotated[float, typer.Option(
                    help="epsilon: share spread over the active prompts.")] = GREEDY.epsilon,
                temperature: Annotated[float, typer.Option(
                    help="softmax: temperature over P(correct).")] = GREEDY.temperature,
                default_floor: Annotated[float, typer.Option(
                    help="Least share of traffic kept on the safe default prompt.")] = GREEDY.default_floor) -> None:
    """Set how a task's selections explore; the service picks it up within seconds. The defaults are the
    library's (``oirl.select.explore.Exploration``), as for PUT /v1/tasks/{name}/exploration."""
    from pydantic import ValidationError

    from oirl.tasks import TaskError, set_exploration

    try:
        exploration = Exploration(mode=mode, epsilon=epsilon, temperature=temperature, default_floor=default_floor)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), code=2)
    with user_errors(TaskError):
        set_exploration(open_store(), name, exploration)
    typer.echo(f"task {name}: exploration {exploration}")
