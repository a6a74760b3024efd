"""Store: migrations both ways on SQLite and PostgreSQL, models == migrations, idempotent imports."""

from __future__ import annotations

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from oirl.store.engine import make_engine
from oirl.store.logs import accuracy_table, import_outcomes, outcomes_frame
from oirl.store.migrate import downgrade, upgrade
from oirl.store.models import Base

TABLES = {"prompts", "queries", "outcomes", "model_versions", "aliases", "alias_events", "jobs"}


def test_upgrade_then_downgrade(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    downgrade(database_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(database_url)  # and back up again on the same database
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_models_and_migrations_agree(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_sqlite_runs_wal_with_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def _rows(n_queries: int = 3) -> pd.DataFrame:
    rows = []
    for q in range(n_queries):
        for p, prompt in enumerate(["Let's think step by step: ", "The answer is:"]):
            rows.append({"dataset": "toy", "external_key": str(q), "query": f"what is {q} + {q}?",
                         "prompt": prompt, "correct": (q + p) % 2 == 0, "llm": "m", "split": "train"})
    return pd.DataFrame(rows)


def test_import_is_idempotent_and_reads_back(store):
    frame = _rows()
    with store() as s, s.begin():
        first = import_outcomes(s, frame, source="test")
    with store() as s, s.begin():
        second = import_outcomes(s, frame, source="test")
    assert (first.rows, first.inserted) == (6, 6)
    assert (second.rows, second.inserted, second.already_present) == (6, 0, 6)
    with store() as s:
        back = outcomes_frame(s, dataset="toy")
        table = accuracy_table(s)
    assert len(back) == 6 and back.correct.sum() == frame.correct.sum()
    assert set(back.columns) >= {"query", "prompt", "correct", "split", "llm"}
    assert table.rows.sum() == 6 and table.accuracy.between(0, 1).all()


def test_same_text_in_two_datasets_or_keys_stays_distinct(store):
    frame = _rows(1)
    other = frame.assign(external_key="another-line")  # SVAMP repeats question texts on distinct lines
    with store() as s, s.begin():
        import_outcomes(s, pd.concat([frame, other]), source="test")
    with store() as s:
        assert outcomes_frame(s).query_id.nunique() == 2


def test_failed_import_writes_nothing(store):
    bad = _rows().astype({"llm": object})
    bad.loc[3, "llm"] = None  # NOT NULL violation in the middle of the batch, after other rows went in
    with pytest.raises(IntegrityError):
        with store() as s, s.begin():
            import_outcomes(s, bad, source="test")
    with store() as s:
        assert outcomes_frame(s).empty
