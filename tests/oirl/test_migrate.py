"""Migrations started by several processes at once (replicas starting together) on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from oirl.store.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_three_processes_migrating_one_empty_database_all_succeed(database_url):
    # Without the advisory lock one of three usually died creating a type that another had just
    # created (duplicate key in pg_type), which would crash-loop a pod of a fresh deployment.
    code = "import sys; from oirl.store.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, database_url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in errors), [e[-500:] for rc, e in errors if rc]
    engine = make_engine(database_url)
    try:
        assert {"jobs", "model_versions", "decisions"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
