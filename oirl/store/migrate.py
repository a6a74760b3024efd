"""Run Alembic migrations from code (the CLI and the service call these before any work).

On PostgreSQL a migration holds a session-level advisory lock: several replicas (pods, compose
services, `oirl serve` processes) start at once and each migrates to head before serving. Without
the lock two of them create the same tables at the same moment and one dies on a duplicate key
in the catalogue; with it the first migrates and the others find the store at head.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

import migrations

# Any fixed 64-bit number, the same in every process of every version: "oirl" in ASCII.
MIGRATION_LOCK_KEY = 0x6F69726C


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    _locked(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str, revision: str = "base") -> None:
    _locked(url, lambda cfg: command.downgrade(cfg, revision))


def _locked(url: str, run: Callable[[Config], None]) -> None:
    cfg = alembic_config(url)
    if make_url(url).get_backend_name() != "postgresql":
        run(cfg)  # SQLite: one file on one machine, its own write lock serialises the DDL
        return
    from oirl.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # Session-level (not transaction-level): Alembic commits its own transactions on this
            # connection (migrations/env.py uses it), and the lock must outlive them.
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            conn.commit()
            try:
                cfg.attributes["connection"] = conn
                run(cfg)
            finally:
                conn.rollback()  # whatever a failed migration left open, so the unlock can run
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                conn.commit()
    finally:
        engine.dispose()
