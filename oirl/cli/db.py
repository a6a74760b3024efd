"""`oirl db ...`: schema migrations."""

from __future__ import annotations

import typer

from oirl.settings import get_settings
from oirl.store import migrate

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the configured database (OIRL_DATABASE_URL) up to REVISION."""
    migrate.upgrade(get_settings().resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def downgrade(revision: str = typer.Argument("base", help="Target revision.")) -> None:
    """Migrate the configured database down to REVISION (base drops every table)."""
    migrate.downgrade(get_settings().resolved_database_url, revision)
    typer.echo(f"database at {revision}")
