"""`oirl serve`: run migrations, optionally bootstrap data and a first model, then the HTTP service."""

from __future__ import annotations

import os
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach ``serve`` and the ``models`` sub-app (registry commands) to the top-level app."""
    from oirl.cli import models

    app.command("serve")(serve)
    app.add_typer(models.app, name="models")


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each hot-swaps the champion).")] = 1,
    bootstrap: Annotated[bool, typer.Option(
        "--bootstrap", help="If the store is empty, import the benchmark logs; if there is no champion, "
                            "train and promote a first model.")] = False,
) -> None:
    """Migrate the store, then serve the API (docs at /docs, a small page at /)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see app/__init__.py; before torch/lightgbm load
    import uvicorn

    from oirl.cli.common import open_store, user_errors
    from oirl.datasets.benchmark import BenchmarkFormatError
    from oirl.datasets.fetch import BenchmarkFileError
    from oirl.jobs import JobError
    from oirl.settings import get_settings

    settings = get_settings()
    factory = open_store(settings)  # Alembic to head, once, before any worker starts
    typer.echo(f"store: {settings.resolved_database_url.split('@')[-1]} (migrated)")
    if bootstrap:
        from oirl.embed import make_embedder
        from oirl.jobs.bootstrap import bootstrap as run_bootstrap

        with user_errors(BenchmarkFileError, BenchmarkFormatError, JobError):
            run_bootstrap(settings, factory, make_embedder(settings), echo=typer.echo)
    if settings.admin_token is None:
        typer.echo("note: OIRL_ADMIN_TOKEN is not set, so write and admin routes answer 403")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"serving on http://{shown}:{port}/  (API docs /docs, readiness /readyz, metrics /metrics)")
    # Each worker imports torch and loads the encoder on a thread at startup; those imports hold the
    # GIL for seconds at a time, so the thread that answers uvicorn's health ping can miss its 5 s.
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
                timeout_worker_healthcheck=settings.worker_healthcheck_seconds)
