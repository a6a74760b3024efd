"""`oirl train`, `oirl evaluate`, `oirl select` (reward model, evaluation, best-of-N)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level app."""
