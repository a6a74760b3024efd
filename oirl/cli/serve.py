"""`oirl serve`: run migrations, then the HTTP service."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level app."""
