"""What the console's Live page reads from the store, so every worker draws the same picture.

- ``decision_rates``: per task, the decisions of the last minute (every worker's, from the
  decision log): how many per second, and the shares that fell back or explored.
- ``judged_accuracy``: per task and time bucket, the mean reward of the service's decisions that
  received feedback. A judged decision is an observation carrying a ``decision_id`` (feedback turns
  a decision into one; ``POST /v1/logs`` rows may carry it too); its time is ``logged_at`` (the
  decision's), else when it was stored.
Everything is aggregated in SQL (no row is shipped to Python), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Integer, cast, extract, func, select
from sqlalchemy.orm import Session

from oirl.store.models import Decision, Observation, Query, Task


def _epoch_seconds(session: Session, when):
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(extract("epoch", when)), BigInteger)
    return cast(func.strftime("%s", when), Integer)  # SQLite stores UTC wall time as text


def judged_accuracy(session: Session, *, hours: float = 6.0, bucket_seconds: int = 300, task: str | None = None,
                    now: datetime | None = None) -> dict[str, list[dict]]:
    """task -> [{at, n, accuracy}] oldest first, one point per ``bucket_seconds`` with feedback in the
    last ``hours``; tasks without any are absent."""
    since = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(hours=hours)
    when = func.coalesce(Observation.logged_at, Observation.created_at)
    bucket = _epoch_seconds(session, when) // bucket_seconds  # the bucket's number (SQL integer division)
    stmt = (select(Task.name, bucket.label("bucket"), func.count(), func.avg(Observation.reward))
            .select_from(Observation).join(Query, Query.id == Observation.query_id).join(Task, Task.id == Query.task_id)
            .where(Observation.decision_id.is_not(None), when >= since)
            .group_by(Task.name, bucket).order_by(Task.name, bucket))
    if task is not None:
        stmt = stmt.where(Task.name == task)
    out: dict[str, list[dict]] = {}
    for name, b, n, accuracy in session.execute(stmt).all():
        out.setdefault(name, []).append({"at": datetime.fromtimestamp(int(b) * bucket_seconds, UTC), "n": int(n),
                                         "accuracy": float(accuracy)})
    return out


def decision_rates(session: Session, *, seconds: float = 60.0, task: str | None = None,
                   now: datetime | None = None) -> dict[str, dict]:
    """task -> {decisions, per_second, fallback_share, exploration_share} over the last ``seconds``;
    tasks without a decision in the window are absent."""
    since = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(seconds=seconds)
    as_int = lambda flag: func.sum(cast(flag, Integer))  # noqa: E731 - booleans summed the same on both stores
    stmt = (select(Task.name, func.count(), as_int(Decision.fallback), as_int(Decision.explored))
            .select_from(Decision).join(Task, Task.id == Decision.task_id)
            .where(Decision.created_at >= since).group_by(Task.name))
    if task is not None:
        stmt = stmt.where(Task.name == task)
    return {name: {"decisions": int(n), "per_second": n / seconds, "fallback_share": int(fb or 0) / n,
                   "exploration_share": int(ex or 0) / n}
            for name, n, fb, ex in session.execute(stmt).all()}
