"""Shared CLI plumbing: settings, an up-to-date store, and errors printed without tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy.orm import Session, sessionmaker

from oirl.datasets.fetch import fetch
from oirl.settings import Settings, get_settings
from oirl.store.engine import make_engine, make_session_factory
from oirl.store.migrate import upgrade


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the expected failures of a command into one clear line and a non-zero exit."""
    try:
        yield
    except kinds as exc:
        fail(str(exc))


def open_store(settings: Settings | None = None) -> sessionmaker[Session]:
    """Migrate the configured database to head and return a session factory for it."""
    settings = settings or get_settings()
    url = settings.resolved_database_url
    upgrade(url)
    return make_session_factory(make_engine(url))


def ensure_benchmark(mirror: Path | None = None, settings: Settings | None = None) -> Path:
    """Return the directory holding verified benchmark files, fetching what is missing."""
    settings = settings or get_settings()
    dest = settings.resolved_benchmark_dir
    fetch(dest, mirror=mirror or settings.mirror_dir)
    return dest
