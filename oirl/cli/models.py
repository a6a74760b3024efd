"""`oirl models ...`: the model registry from the command line (list, register, promote, rollback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Model registry: versions and the champion/challenger aliases.", no_args_is_help=True)


def _registry():
    from oirl.cli.common import open_store
    from oirl.registry import ModelRegistry
    from oirl.settings import get_settings

    settings = get_settings()
    return ModelRegistry(open_store(settings), settings.resolved_artefact_dir)


@app.command("list")
def list_cmd() -> None:
    """Versions, newest first, with aliases and held-out accuracy."""
    versions = _registry().list()
    if not versions:
        typer.echo("no model versions: `oirl serve --bootstrap`, `oirl models register DIR` or POST /admin/retrain")
    for v in versions:
        acc = (v.metrics.get("holdout") or {}).get("accuracy")
        tags = f" [{', '.join(v.aliases)}]" if v.aliases else ""
        typer.echo(f"v{v.id:<4} {v.created_at:%Y-%m-%d %H:%M}  {v.backend:<8} {v.embedder:<20} "
                   f"acc={acc if acc is None else f'{acc:.3f}'}  sha256={v.artefact_sha256[:12]}{tags}")


@app.command("register")
def register_cmd(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                              help="A saved reward model (`oirl train`).")],
    alias: Annotated[str | None, typer.Option(help="Also point this alias at it (challenger).")] = "challenger",
    metrics: Annotated[Path | None, typer.Option(help="JSON file of metrics to record.")] = None,
) -> None:
    """Copy a trained model directory into the registry as the next immutable version."""
    from oirl.cli.common import user_errors
    from oirl.reward import ArtefactError

    if alias not in (None, "challenger"):
        raise typer.BadParameter("only `challenger` can be set here; use `oirl models promote` for the champion")
    with user_errors(ArtefactError, OSError, ValueError):
        m = json.loads(metrics.read_text()) if metrics else None
        info = _registry().register(directory, metrics=m, alias=alias)
    typer.echo(f"registered v{info.id} (sha256 {info.artefact_sha256[:12]}…) at {info.artefact_path}")


@app.command("promote")
def promote_cmd(
    version: int,
    force: Annotated[bool, typer.Option("--force", help="Skip the not-worse-than-champion gate.")] = False,
) -> None:
    """Make VERSION the champion; running services swap to it within seconds."""
    from oirl.cli.common import user_errors
    from oirl.registry import ArtefactChecksumError, RegistryError

    with user_errors(RegistryError, ArtefactChecksumError):
        move = _registry().promote(version, force=force, reason="cli")
    typer.echo(f"champion: v{move.previous} -> v{move.version}")


@app.command("rollback")
def rollback_cmd() -> None:
    """Return the champion to the version before the last promotion."""
    from oirl.cli.common import user_errors
    from oirl.registry import RegistryError

    with user_errors(RegistryError):
        move = _registry().rollback("cli")
    typer.echo(f"champion: v{move.previous} -> v{move.version}")
