"""`oirl models ...`: the model registry from the command line (list, register, promote, rollback)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oirl.cli.common import fail, open_store, user_errors

app = typer.Typer(help="Model registry: versions and each task's champion/challenger.", no_args_is_help=True)


def _registry():
    from oirl.registry import ModelRegistry
    from oirl.settings import get_settings

    return ModelRegistry.from_settings(open_store(), get_settings())


@app.command("list")
def list_cmd(task: Annotated[str | None, typer.Option("--task", "-t", help="Only this task's versions.")] = None,
             ) -> None:
    """Versions, newest first, with their task, aliases and gate verdict."""
    from oirl.cli.model import describe_gate
    from oirl.registry import TaskNotFound

    with user_errors(TaskNotFound):
        versions = _registry().list(task)
    if not versions:
        typer.echo("no model versions: `oirl train --task T`, `oirl serve --bootstrap` or POST /admin/retrain")
    for v in versions:
        tags = f" [{', '.join(v.aliases)}]" if v.aliases else ""
        typer.echo(f"v{v.id:<4} {v.task or '-':<12} {v.created_at:%Y-%m-%d %H:%M}  {v.backend:<8} "
                   f"sha256={v.artefact_sha256[:12]}{tags}")
        typer.echo(f"      gate {describe_gate(v.gate)}")


@app.command("register")
def register_cmd(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                              help="A saved model bundle (oirl.registry.save_bundle).")],
    alias: Annotated[str | None, typer.Option(help="Also point this alias at it (challenger).")] = "challenger",
) -> None:
    """Copy a saved model bundle into the registry as the next immutable version of its task."""
    from oirl.registry import TaskNotFound
    from oirl.reward import ArtefactError

    if alias not in (None, "challenger"):
        raise typer.BadParameter("only `challenger` can be set here; use `oirl models promote` for the champion")
    with user_errors(ArtefactError, TaskNotFound, OSError):
        info = _registry().register(directory, alias=alias)
    typer.echo(f"registered v{info.id} of task {info.task!r} (sha256 {info.artefact_sha256[:12]}…)")


@app.command("promote")
def promote_cmd(
    version: int,
    force: Annotated[bool, typer.Option("--force", help="Skip the gate (not worse than the champion on the "
                                                        "same held-out queries).")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the alias history.")] = "",
) -> None:
    """Make VERSION its task's champion; running services swap to it within seconds."""
    from oirl.registry import ArtefactChecksumError, RegistryError

    with user_errors(RegistryError, ArtefactChecksumError):
        move = _registry().promote(version, force=force, reason=reason or "cli")
    if move.previous == move.version:
        typer.echo(f"task {move.task}: v{move.version} is already the champion; nothing changed")
    else:
        typer.echo(f"task {move.task}: champion {_v(move.previous)} -> v{move.version}")


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


@app.command("rollback")
def rollback_cmd(task: Annotated[str | None, typer.Option("--task", "-t", help="Whose champion.")] = None) -> None:
    """Return a task's champion to the version before its last promotion."""
    from oirl.registry import RegistryError
    from oirl.settings import get_settings
    from oirl.tasks import TaskError, resolve_task

    registry = _registry()
    with user_errors(TaskError, RegistryError):
        chosen = resolve_task(registry.factory, task, get_settings().default_task)
        move = registry.rollback(chosen, "cli")
    typer.echo(f"task {move.task}: champion v{move.previous} -> v{move.version}")


@app.command("history")
def history_cmd(task: Annotated[str, typer.Option("--task", "-t", help="Whose champion history.")]) -> None:
    """Every move of a task's champion alias, newest first."""
    from oirl.registry import RegistryError

    with user_errors(RegistryError):
        events = _registry().history(task)
    if not events:
        fail(f"task {task!r} has never had a champion", code=1)
    for e in events:
        typer.echo(f"{e['at']:%Y-%m-%d %H:%M:%S}  v{e['previous']} -> v{e['version']}  {e['reason']}")
