"""Repository for model versions and their per-task aliases (champion, challenger).

Versions are immutable rows, each belonging to one task; aliases are per task and are the
only thing that moves, and every move is
appended to ``alias_events`` so a rollback can find where the alias pointed before.
Moving an alias locks its row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises
writers anyway), so two concurrent promotions cannot interleave their read and write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from oirl.store.models import Alias, AliasEvent, ModelVersion, utcnow

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)


def next_version_id(session: Session) -> int:
    from sqlalchemy import func

    return int(session.execute(select(func.coalesce(func.max(ModelVersion.id), 0))).scalar_one()) + 1


def add_version(session: Session, **fields: Any) -> ModelVersion:
    """Insert a version row (``id`` may be given to match a directory already named for it)."""
    version = ModelVersion(**fields)
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def list_versions(session: Session, task_id: int | None = None) -> list[ModelVersion]:
    stmt = select(ModelVersion).order_by(ModelVersion.id.desc())
    if task_id is not None:
        stmt = stmt.where(ModelVersion.task_id == task_id)
    return list(session.execute(stmt).scalars())


def aliases(session: Session, task_id: int | None = None) -> dict[tuple[int, str], int]:
    """(task id, alias name) -> version id."""
    stmt = select(Alias.task_id, Alias.name, Alias.version_id)
    if task_id is not None:
        stmt = stmt.where(Alias.task_id == task_id)
    return {(t, n): v for t, n, v in session.execute(stmt).all()}


def alias_version_id(session: Session, task_id: int, name: str) -> int | None:
    stmt = select(Alias.version_id).where(Alias.task_id == task_id, Alias.name == name)
    return session.execute(stmt).scalar_one_or_none()


def move_alias(session: Session, task_id: int, name: str, version_id: int, reason: str = "") -> int | None:
    """Point the task's ``name`` at ``version_id``; record the move; return the previous version id."""
    # lazyload: the joined version would make PostgreSQL refuse FOR UPDATE on an outer join.
    stmt = (select(Alias).options(lazyload(Alias.version))
            .where(Alias.task_id == task_id, Alias.name == name).with_for_update())
    row = session.execute(stmt).scalar_one_or_none()
    previous = row.version_id if row else None
    if row is None:
        session.add(Alias(task_id=task_id, name=name, version_id=version_id, updated_at=utcnow()))
    else:
        row.version_id = version_id
        row.updated_at = utcnow()
    session.add(AliasEvent(task_id=task_id, alias=name, version_id=version_id, previous_version_id=previous,
                           reason=reason[:255]))
    session.flush()
    return previous


def alias_history(session: Session, task_id: int, name: str, limit: int = 50) -> list[AliasEvent]:
    stmt = (select(AliasEvent).where(AliasEvent.task_id == task_id, AliasEvent.alias == name)
            .order_by(AliasEvent.id.desc()).limit(limit))
    return list(session.execute(stmt).scalars())
