"""The ``oirl`` command line: data, db, tasks, train, evaluate, select, models, serve."""

from __future__ import annotations

import typer

from oirl.cli import data, db, model, serve, tasks

app = typer.Typer(
    help="Prompt-OIRL: learn from offline prompting logs which prompt works for which query, "
    "and serve the best one without calling an LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(db.app, name="db")
app.add_typer(tasks.app, name="tasks")
model.register(app)
serve.register(app)


def main() -> None:
    app()
