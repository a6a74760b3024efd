"""Decision log and feedback in the library: bounded queue, retention, expiry, one judgement each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from oirl.feedback import Feedback, record_feedback
from oirl.store.decision_log import DecisionLog
from oirl.store.engine import transaction
from oirl.store.logs import observations_frame
from oirl.store.models import Decision
from oirl.store.tasks_repo import create_task


def _decision(task="t", text="What is 2 + 2?", when=None, **over) -> dict:
    d = {"id": uuid.uuid4().hex, "task": task, "query_text": text, "llm": "m",
         "candidates": [{"text": "A: "}, {"text": "B: "}], "probabilities": [0.9, 0.1], "scores": [0.6, 0.4],
         "chosen": 1, "propensity": 0.1, "explored": True, "fallback": False, "model_version": 1,
         "policy": {"exploration": {"mode": "epsilon"}}}
    if when is not None:
        d["created_at"] = when
    return d | over


@pytest.fixture
def task_store(store):
    with transaction(store) as s:
        create_task(s, "t", llm="m", prompts=["A: ", "B: "])
    return store


def test_bounded_queue_drops_and_counts(task_store):
    log = DecisionLog(task_store, max_queue=3)
    assert [log.record(_decision()) for _ in range(5)] == [True, True, True, False, False]
    assert log.dropped == 2 and log.flush() and log.written == 3 and log.queued == 0


def test_a_record_the_store_refuses_is_set_aside_and_the_rest_written(task_store):
    """One bad decision must not hold up the queue: before, the writer retried its batch forever and
    nothing after it was ever stored (PostgreSQL refused a 200-character llm in VARCHAR(128))."""
    log = DecisionLog(task_store, batch_size=4)
    bad = [_decision(candidates=[{"text": object()}])]  # no store can serialise this
    if task_store.kw["bind"].dialect.name == "postgresql":
        bad.append(_decision(llm="x" * 200))
    before = [_decision(text=f"before {i}") for i in range(3)]
    after = [_decision(text=f"after {i}") for i in range(6)]
    for d in before + bad + after:
        assert log.record(d)
    assert log.flush() and log.queued == 0
    assert (log.written, log.rejected) == (len(before) + len(after), len(bad))
    assert log.status()["rejected"] == len(bad)
    with task_store() as s:
        stored = set(s.execute(select(Decision.id)).scalars())
    assert stored == {d["id"] for d in before + after}
    log.record(_decision(text="later"))  # and the queue keeps moving
    assert log.flush() and log.written == len(before) + len(after) + 1


def test_an_unreachable_store_keeps_the_batch_for_later(tmp_path):
    from oirl.store.engine import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")  # cannot be opened: OperationalError
    log = DecisionLog(make_session_factory(engine))
    log.record(_decision())
    assert not log.flush()
    assert (log.queued, log.rejected, log.written) == (1, 0, 0) and "OperationalError" in log.last_error
    engine.dispose()


def test_feedback_keeps_the_propensity_and_refuses_expired(task_store):
    log = DecisionLog(task_store, retention_days=30)
    fresh, old = _decision(), _decision(text="old one", when=datetime.now(UTC) - timedelta(days=31))
    log.record(fresh)
    log.record(old)
    assert log.flush()
    results = record_feedback(task_store, [Feedback(decision_id=fresh["id"], reward=0.5),
                                           Feedback(decision_id=old["id"], correct=True)], retention_days=30)
    assert [r.status for r in results] == ["recorded", "expired"]
    with task_store() as s:
        obs = observations_frame(s, task="t")
    assert len(obs) == 1 and obs.iloc[0]["propensity"] == 0.1 and obs.iloc[0]["prompt"] == "B: "
    assert obs.iloc[0]["reward"] == 0.5 and obs.iloc[0]["decision_id"] == fresh["id"]
    assert log.prune() == 1  # the old decision goes; feedback on it is now simply unknown
    assert record_feedback(task_store, [Feedback(decision_id=old["id"], correct=True)], 30)[0].status == "unknown"


def test_one_judgement_per_decision_even_within_a_batch(task_store):
    log = DecisionLog(task_store)
    d = _decision()
    log.record(d)
    log.flush()
    items = [Feedback(decision_id=d["id"], correct=True), Feedback(decision_id=d["id"], correct=True),
             Feedback(decision_id=d["id"], correct=False)]
    assert [r.status for r in record_feedback(task_store, items, 30)] == ["recorded", "already_recorded", "conflict"]
    with task_store() as s:
        assert len(observations_frame(s, task="t")) == 1


def test_feedback_values_are_strict():
    with pytest.raises(ValidationError):
        Feedback(decision_id="x", correct="yes")
    with pytest.raises(ValidationError):
        Feedback(decision_id="x", reward=float("nan"))
    with pytest.raises(ValidationError):
        Feedback(decision_id="x", reward=1.0, correct=True)
    assert Feedback(decision_id="x", reward=1).value == 1.0
