"""Store: migrations both ways on SQLite and PostgreSQL (carrying data over), models == migrations,
observations as events with idempotent imports."""

from __future__ import annotations

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from oirl.store.engine import make_engine
from oirl.store.logs import accuracy_table, import_observations, observations_frame
from oirl.store.migrate import downgrade, upgrade
from oirl.store.models import Base

TABLES = {"tasks", "task_prompts", "prompts", "queries", "observations", "model_versions", "aliases",
          "alias_events", "jobs", "decisions"}


def test_upgrade_then_downgrade(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    downgrade(database_url)
    assert not set(inspect(engine).get_table_names()) - {"alembic_version"}
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
            rows.append({"task": "toy", "external_key": str(q), "query": f"what is {q} + {q}?",
                         "prompt": prompt, "reward": float((q + p) % 2 == 0), "llm": "m", "split": "train"})
    return pd.DataFrame(rows)


def test_import_is_idempotent_and_reads_back(store):
    frame = _rows()
    with store() as s, s.begin():
        first = import_observations(s, frame, source="test")
    with store() as s, s.begin():
        second = import_observations(s, frame, source="test")
    assert (first.rows, first.inserted) == (6, 6)
    assert (second.rows, second.inserted, second.already_present) == (6, 0, 6)
    with store() as s:
        back = observations_frame(s, task="toy")
        table = accuracy_table(s)
    assert len(back) == 6 and back.reward.sum() == frame.reward.sum()
    assert set(back.columns) >= {"query", "prompt", "reward", "correct", "split", "llm", "task", "propensity"}
    assert table.rows.sum() == 6 and table.accuracy.between(0, 1).all()


def test_concurrent_imports_each_count_only_their_own_rows(store):
    """Eight batches at once, half of each shared with the others: before, the count came from the whole
    table before and after, and concurrent requests reported each other's rows (even negative counts)."""
    from concurrent.futures import ThreadPoolExecutor

    from oirl.store.engine import transaction
    from oirl.store.logs import count_observations

    def batch(n: int) -> pd.DataFrame:
        keys = [f"shared-{i}" for i in range(100)] + [f"own-{n}-{i}" for i in range(100)]
        return pd.DataFrame({"task": "toy", "external_key": keys, "query": keys, "prompt": "p: ", "reward": 1.0,
                             "llm": "m", "split": "train"})

    def run(n: int):
        for _attempt in range(20):  # SQLite serialises writers: a busy store is retried, as a client would
            try:
                with transaction(store) as s:
                    return import_observations(s, batch(n), source="test").inserted
            except Exception as exc:  # noqa: BLE001 - "database is locked" / serialisation failures only
                if "locked" not in str(exc) and "serializ" not in str(exc) and "duplicate" not in str(exc):
                    raise
        raise AssertionError("the store stayed busy")

    with ThreadPoolExecutor(8) as pool:
        inserted = list(pool.map(run, range(8)))
    with store() as s:
        stored = count_observations(s)
    assert stored == 100 + 8 * 100 and sum(inserted) == stored and all(100 <= n <= 200 for n in inserted)


def test_repeated_tries_are_observations_and_reimport_adds_nothing(store):
    """The same query and prompt tried three times (two right, one wrong) is three observations."""
    one = _rows(1).iloc[[0]]
    tries = pd.concat([one.assign(reward=1.0), one.assign(reward=0.0), one.assign(reward=1.0)], ignore_index=True)
    with store() as s, s.begin():
        assert import_observations(s, tries, source="a").inserted == 3
    with store() as s, s.begin():  # the same file again, even under another source name
        assert import_observations(s, tries, source="b").inserted == 0
    with store() as s, s.begin():  # one more try of the same pair, appended to the file
        assert import_observations(s, pd.concat([tries, one.assign(reward=0.0)]), source="a").inserted == 1
    with store() as s:
        back = observations_frame(s)
    assert len(back) == 4 and back.reward.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_decision_and_observation_ids_are_the_key(store):
    one = _rows(1).iloc[[0]]
    a = one.assign(decision_id="d-1", propensity=0.25)
    with store() as s, s.begin():
        assert import_observations(s, pd.concat([a, one.assign(observation_id="x")]), source="t").inserted == 2
    with store() as s, s.begin():  # same decision judged again, even with another reward: nothing new
        assert import_observations(s, a.assign(reward=0.0), source="t").inserted == 0
    with store() as s:
        back = observations_frame(s)
    assert back.propensity.tolist()[0] == 0.25 and back.decision_id.tolist()[0] == "d-1"


def test_same_text_in_two_tasks_or_keys_stays_distinct(store):
    frame = _rows(1)
    other = frame.assign(external_key="another-line")  # SVAMP repeats question texts on distinct lines
    elsewhere = frame.assign(task="other")
    with store() as s, s.begin():
        import_observations(s, pd.concat([frame, other, elsewhere]), source="test")
    with store() as s:
        assert observations_frame(s).query_id.nunique() == 3
        assert set(observations_frame(s).task) == {"toy", "other"}


def test_failed_import_writes_nothing(store):
    bad = _rows().astype({"split": object})
    bad.loc[3, "split"] = None  # NOT NULL violation in the middle of the batch, after other rows went in
    with pytest.raises(IntegrityError):
        with store() as s, s.begin():
            import_observations(s, bad, source="test")
    with store() as s:
        assert observations_frame(s).empty


def test_migration_carries_a_0001_store_over(database_url, tmp_path):
    """Outcomes, prompts and aliases of a store made before tasks survive the upgrade, and
    re-importing the same rows afterwards adds nothing."""
    from oirl.store.engine import make_session_factory
    from oirl.store.logs import count_observations

    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    with engine.begin() as c:
        c.execute(text("INSERT INTO prompts (id, text, text_sha256, name, active, created_at) VALUES "
                       "(1, 'Let''s think step by step: ', :h1, NULL, true, CURRENT_TIMESTAMP), "
                       "(2, 'The answer is:', :h2, NULL, false, CURRENT_TIMESTAMP), "
                       "(3, 'never logged', :h3, NULL, true, CURRENT_TIMESTAMP)"),
                  {"h1": _sha("Let's think step by step: "), "h2": _sha("The answer is:"), "h3": _sha("never logged")})
        for q in range(3):
            c.execute(text("INSERT INTO queries (id, dataset, external_key, text, text_sha256) "
                           "VALUES (:i, 'toy', :k, :t, :h)"),
                      {"i": q + 1, "k": str(q), "t": f"what is {q} + {q}?", "h": _sha(f"what is {q} + {q}?")})
            for p in (1, 2):
                c.execute(text("INSERT INTO outcomes (query_id, prompt_id, llm, correct, split, source, created_at) "
                               "VALUES (:q, :p, 'm', :c, 'train', 'old', CURRENT_TIMESTAMP)"),
                          {"q": q + 1, "p": p, "c": (q + p - 1) % 2 == 0})
        c.execute(text("INSERT INTO model_versions (id, created_at, backend, params, embedder, embedder_revision, "
                       "library_versions, data_snapshot, metrics, artefact_path, artefact_sha256) VALUES "
                       "(1, CURRENT_TIMESTAMP, 'lightgbm', '{}', 'e', 'r', '{}', '{\"dataset\": \"toy\"}', '{}', "
                       "'/x', 'abc')"))
        c.execute(text("INSERT INTO aliases (name, version_id, updated_at) VALUES ('champion', 1, CURRENT_TIMESTAMP)"))
        c.execute(text("INSERT INTO alias_events (alias, version_id, reason, created_at) "
                       "VALUES ('champion', 1, 'promoted', CURRENT_TIMESTAMP)"))
    upgrade(database_url)
    factory = make_session_factory(engine)
    with factory() as s:
        back = observations_frame(s)
        assert len(back) == 6 and set(back.task) == {"toy"} and back.reward.sum() == 3
        active = dict(s.execute(text("SELECT prompt_id, active FROM task_prompts")).all())
        assert {k: bool(v) for k, v in active.items()} == {1: True, 2: False, 3: True}
        assert s.execute(text("SELECT llm FROM tasks WHERE name = 'toy'")).scalar_one() == "m"
        assert s.execute(text("SELECT task_id, name, version_id FROM aliases")).all() == [(1, "champion", 1)]
    with factory() as s, s.begin():  # the same rows imported again after the upgrade: nothing new
        again = _rows().assign(reward=[float((q + p) % 2 == 0) for q in range(3) for p in (0, 1)])
        assert import_observations(s, again, source="new").inserted == 0
        assert count_observations(s, task="toy") == 6
    engine.dispose()


def _sha(t: str) -> str:
    from oirl.hashing import text_sha256

    return text_sha256(t)
