"""Repository for the prompting logs: idempotent bulk import, read-back as DataFrames, stats.

Imports run in the caller's transaction: either every row of a batch lands or none does.
Rows are inserted with ON CONFLICT DO NOTHING on the natural keys (see models), so
re-importing the same file, or the benchmark twice, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Integer, Table, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oirl.hashing import text_sha256
from oirl.store.models import Outcome, Prompt, Query

CHUNK = 5_000


@dataclass(frozen=True)
class ImportResult:
    rows: int
    inserted: int

    @property
    def already_present(self) -> int:
        return self.rows - self.inserted


def _chunks(rows: list[dict], size: int = CHUNK) -> Iterator[list[dict]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _insert_ignoring_duplicates(session: Session, table: Table, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"bulk import supports SQLite and PostgreSQL, not {dialect}")
    stmt = insert(table).on_conflict_do_nothing(index_elements=keys)
    for chunk in _chunks(rows):
        session.execute(stmt, chunk)


def upsert_prompts(session: Session, texts: Iterable[str], names: dict[str, str] | None = None) -> dict[str, int]:
    """Ensure each prompt text exists; return text -> id."""
    names = names or {}
    unique = list(dict.fromkeys(texts))
    by_hash = {text_sha256(t): t for t in unique}
    rows = [{"text": t, "text_sha256": h, "name": names.get(t), "active": True} for h, t in by_hash.items()]
    _insert_ignoring_duplicates(session, Prompt.__table__, rows, ["text_sha256"])
    ids = {}
    hashes = list(by_hash)
    for i in range(0, len(hashes), CHUNK):
        part = hashes[i : i + CHUNK]
        for pid, h in session.execute(select(Prompt.id, Prompt.text_sha256).where(Prompt.text_sha256.in_(part))):
            ids[by_hash[h]] = pid
    return ids


def upsert_queries(session: Session, frame: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Ensure each (dataset, external_key, text) query exists; return (dataset, key) -> id."""
    uniq = frame[["dataset", "external_key", "query"]].drop_duplicates(["dataset", "external_key"])
    rows = [
        {"dataset": d, "external_key": k, "text": q, "text_sha256": text_sha256(q)}
        for d, k, q in uniq.itertuples(index=False)
    ]
    _insert_ignoring_duplicates(session, Query.__table__, rows, ["dataset", "external_key"])
    ids: dict[tuple[str, str], int] = {}
    for dataset, group in uniq.groupby("dataset"):
        keys = group["external_key"].tolist()
        for i in range(0, len(keys), CHUNK):
            stmt = select(Query.id, Query.external_key).where(
                Query.dataset == dataset, Query.external_key.in_(keys[i : i + CHUNK])
            )
            for qid, key in session.execute(stmt):
                ids[(dataset, key)] = qid
    return ids


def import_outcomes(session: Session, frame: pd.DataFrame, source: str) -> ImportResult:
    """Import validated rows with columns ``dataset, external_key, query, prompt, correct, llm, split``."""
    if frame.empty:
        return ImportResult(0, 0)
    prompt_ids = upsert_prompts(session, frame["prompt"])
    query_ids = upsert_queries(session, frame)
    before = count_outcomes(session)
    rows = [
        {
            "query_id": query_ids[(d, k)],
            "prompt_id": prompt_ids[p],
            "llm": llm,
            "correct": bool(c),
            "split": s,
            "source": source,
        }
        for d, k, p, llm, c, s in frame[["dataset", "external_key", "prompt", "llm", "correct", "split"]].itertuples(
            index=False
        )
    ]
    _insert_ignoring_duplicates(session, Outcome.__table__, rows, ["query_id", "prompt_id", "llm"])
    return ImportResult(rows=len(frame), inserted=count_outcomes(session) - before)


def count_outcomes(session: Session, dataset: str | None = None, llm: str | None = None) -> int:
    stmt = select(func.count()).select_from(Outcome)
    if dataset is not None:
        stmt = stmt.join(Query, Query.id == Outcome.query_id).where(Query.dataset == dataset)
    if llm is not None:
        stmt = stmt.where(Outcome.llm == llm)
    return session.execute(stmt).scalar_one()


def outcomes_frame(
    session: Session, dataset: str | None = None, llm: str | None = None, split: str | None = None
) -> pd.DataFrame:
    """Logs as a DataFrame: ``query_id, dataset, external_key, query, prompt_id, prompt, llm, correct, split``."""
    stmt = (
        select(
            Outcome.query_id,
            Query.dataset,
            Query.external_key,
            Query.text.label("query"),
            Outcome.prompt_id,
            Prompt.text.label("prompt"),
            Outcome.llm,
            Outcome.correct,
            Outcome.split,
        )
        .join(Query, Query.id == Outcome.query_id)
        .join(Prompt, Prompt.id == Outcome.prompt_id)
        .order_by(Outcome.id)
    )
    if dataset is not None:
        stmt = stmt.where(Query.dataset == dataset)
    if llm is not None:
        stmt = stmt.where(Outcome.llm == llm)
    if split is not None:
        stmt = stmt.where(Outcome.split == split)
    return pd.DataFrame(session.execute(stmt).all(), columns=list(stmt.selected_columns.keys()))


def accuracy_table(session: Session) -> pd.DataFrame:
    """Rows and accuracy per (dataset, llm, split, prompt)."""
    stmt = (
        select(
            Query.dataset,
            Outcome.llm,
            Outcome.split,
            Prompt.id.label("prompt_id"),
            func.coalesce(Prompt.name, func.substr(Prompt.text, 1, 40)).label("prompt"),
            func.count().label("rows"),
            func.avg(cast(Outcome.correct, Integer)).label("accuracy"),
        )
        .join(Query, Query.id == Outcome.query_id)
        .join(Prompt, Prompt.id == Outcome.prompt_id)
        .group_by(Query.dataset, Outcome.llm, Outcome.split, Prompt.id, Prompt.name, Prompt.text)
        .order_by(Query.dataset, Outcome.llm, Outcome.split, Prompt.id)
    )
    return pd.DataFrame(session.execute(stmt).all(), columns=list(stmt.selected_columns.keys()))
