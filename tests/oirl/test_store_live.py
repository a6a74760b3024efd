"""What the Live page reads from the store (decision rates, judged accuracy), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from oirl.store.engine import make_engine, make_session_factory, transaction
from oirl.store.live import decision_rates, judged_accuracy
from oirl.store.logs import import_observations
from oirl.store.migrate import upgrade

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _row(task, i, reward, minutes_ago, decision=True):
    return {"task": task, "external_key": f"{task}-{i}", "query": f"question {i} of {task}", "prompt": "Answer: ",
            "reward": reward, "llm": "toy", "split": "train",
            "decision_id": f"{task}-d{i}" if decision else None,
            "logged_at": (NOW - timedelta(minutes=minutes_ago)).isoformat()}


def test_judged_accuracy_per_task_and_bucket(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    rows = [_row("a", 0, 1.0, 14), _row("a", 1, 0.0, 12), _row("a", 2, 1.0, 11),  # bucket 11:45-11:50
            _row("a", 3, 1.0, 3), _row("a", 4, 1.0, 1),                           # bucket 11:55-12:00
            _row("a", 5, 0.0, 2, decision=False),                                 # not a judged decision
            _row("a", 6, 0.0, 60 * 7),                                            # older than the window
            _row("b", 0, 0.5, 4)]
    with transaction(factory) as s:
        import_observations(s, pd.DataFrame(rows), source="test")
    with factory() as s:
        got = judged_accuracy(s, hours=6, bucket_seconds=300, now=NOW)
        only_b = judged_accuracy(s, task="b", now=NOW)
    engine.dispose()
    assert sorted(got) == ["a", "b"]
    assert [(p["at"], p["n"], round(p["accuracy"], 4)) for p in got["a"]] == [
        (datetime(2026, 3, 1, 11, 45, tzinfo=UTC), 3, 0.6667), (datetime(2026, 3, 1, 11, 55, tzinfo=UTC), 2, 1.0)]
    assert only_b == {"b": [{"at": datetime(2026, 3, 1, 11, 55, tzinfo=UTC), "n": 1, "accuracy": 0.5}]}


def test_decision_rates_of_the_last_minute(database_url):
    from oirl.store.models import Decision, Task

    upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        a, b = Task(name="a", description=""), Task(name="b", description="")
        s.add_all([a, b])
        s.flush()

        def decision(i, task, seconds_ago, fallback=False, explored=False):
            return Decision(id=f"{task.name}{i}", task_id=task.id, query_text="q", candidates=[{"id": 1}],
                            probabilities=[1.0], scores=[0.5], chosen=0, propensity=1.0, explored=explored,
                            fallback=fallback, model_version=1, policy={},
                            created_at=NOW - timedelta(seconds=seconds_ago))

        s.add_all([decision(0, a, 5, fallback=True), decision(1, a, 10, explored=True), decision(2, a, 20),
                   decision(3, a, 50, explored=True), decision(4, a, 90, fallback=True),  # too old
                   decision(0, b, 1)])
    with factory() as s:
        rates = decision_rates(s, seconds=60, now=NOW)
        only_b = decision_rates(s, task="b", now=NOW)
    engine.dispose()
    assert rates["a"] == {"decisions": 4, "per_second": 4 / 60, "fallback_share": 0.25, "exploration_share": 0.5}
    assert rates["b"]["decisions"] == 1 and list(only_b) == ["b"]
