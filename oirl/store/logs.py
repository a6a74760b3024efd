"""Repository for the prompting logs: idempotent bulk import of observations, read-back, stats.

Imports run in the caller's transaction: either every row of a batch lands or none does.
An observation is an event: the same (query, prompt, llm) may be logged many times with
different rewards. What makes a re-import add nothing is the observation key:

- a row with a ``decision_id`` (feedback on one of the service's decisions): that id;
- a row with an ``observation_id`` (the client's own id for the event): that id, per task;
- otherwise a hash of the row's content (task, query key, prompt, llm, reward, propensity,
  logged_at) and its *occurrence number* among identical rows of the same import, so a file
  with the same try logged three times keeps three rows, and importing it again keeps three.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from oirl.hashing import text_sha256
from oirl.store.models import Observation, Prompt, Query, Task, TaskPrompt

CHUNK = 5_000
# Columns of an import frame; the optional ones may be absent or null.
REQUIRED_COLUMNS = ("task", "external_key", "query", "prompt", "reward", "llm", "split")
OPTIONAL_COLUMNS = ("propensity", "decision_id", "observation_id", "logged_at")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    inserted: int

    @property
    def already_present(self) -> int:
        return self.rows - self.inserted


def observation_key(task: str, external_key: str, prompt_sha256: str, llm: str, reward: float,
                    propensity: float | None = None, logged_at: str | None = None, occurrence: int = 0,
                    decision_id: str | None = None, observation_id: str | None = None) -> str:
    """The observation's identity (64 hex characters); see the module docstring."""
    if decision_id:
        parts = ["decision", decision_id]
    elif observation_id:
        parts = ["id", task, observation_id]
    else:
        parts = ["row", task, external_key, prompt_sha256, llm, repr(float(reward)),
                 "" if propensity is None else repr(float(propensity)), logged_at or "", str(occurrence)]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _chunks(rows: list[dict], size: int = CHUNK) -> Iterator[list[dict]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def insert_ignoring_duplicates(session: Session, table: Table, rows: list[dict], keys: list[str]) -> int:
    """Insert, skipping rows whose ``keys`` exist; returns how many this call inserted (RETURNING, so rows
    that concurrent writers inserted meanwhile are not counted as ours)."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"bulk import supports SQLite and PostgreSQL, not {dialect}")
    stmt = insert(table).on_conflict_do_nothing(index_elements=keys).returning(table.c[keys[0]])
    return sum(len(session.execute(stmt, chunk).all()) for chunk in _chunks(rows))


# ----------------------------------------------------------------------------- tasks and prompts
def ensure_tasks(session: Session, names: Iterable[str], llm: str | None = None) -> dict[str, int]:
    """Create the tasks that do not exist yet (with ``llm`` as the LLM they serve); return name -> id."""
    names = list(dict.fromkeys(names))
    insert_ignoring_duplicates(session, Task.__table__, [
        {"name": n, "llm": llm, "description": "", "settings": {}} for n in names], ["name"])
    return dict(session.execute(select(Task.name, Task.id).where(Task.name.in_(names))).all())


def upsert_prompts(session: Session, texts: Iterable[str], names: dict[str, str] | None = None) -> dict[str, int]:
    """Ensure each prompt text exists; return text -> id."""
    names = names or {}
    unique = list(dict.fromkeys(texts))
    by_hash = {text_sha256(t): t for t in unique}
    rows = [{"text": t, "text_sha256": h, "name": names.get(t)} for h, t in by_hash.items()]
    insert_ignoring_duplicates(session, Prompt.__table__, rows, ["text_sha256"])
    ids = {}
    hashes = list(by_hash)
    for i in range(0, len(hashes), CHUNK):
        part = hashes[i : i + CHUNK]
        for pid, h in session.execute(select(Prompt.id, Prompt.text_sha256).where(Prompt.text_sha256.in_(part))):
            ids[by_hash[h]] = pid
    return ids


def link_prompts(session: Session, task_id: int, prompt_ids: Iterable[int], active: bool = True) -> None:
    """Make prompts candidates of a task; a prompt already linked keeps its active flag."""
    rows = [{"task_id": task_id, "prompt_id": p, "active": active} for p in dict.fromkeys(prompt_ids)]
    insert_ignoring_duplicates(session, TaskPrompt.__table__, rows, ["task_id", "prompt_id"])


# ------------------------------------------------------------------------------------- import
def upsert_queries(session: Session, frame: pd.DataFrame, task_ids: dict[str, int]) -> dict[tuple[str, str], int]:
    """Ensure each (task, external_key, text) query exists; return (task, key) -> id."""
    uniq = frame[["task", "external_key", "query"]].drop_duplicates(["task", "external_key"])
    rows = [
        {"task_id": task_ids[t], "external_key": k, "text": q, "text_sha256": text_sha256(q)}
        for t, k, q in uniq.itertuples(index=False)
    ]
    insert_ignoring_duplicates(session, Query.__table__, rows, ["task_id", "external_key"])
    ids: dict[tuple[str, str], int] = {}
    for task, group in uniq.groupby("task"):
        keys = group["external_key"].tolist()
        for i in range(0, len(keys), CHUNK):
            stmt = select(Query.id, Query.external_key).where(
                Query.task_id == task_ids[task], Query.external_key.in_(keys[i : i + CHUNK])
            )
            for qid, key in session.execute(stmt):
                ids[(task, key)] = qid
    return ids


def _optional(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column with every missing value as None (absent column: all None)."""
    if column not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return pd.Series([None if pd.isna(v) else v for v in frame[column]], index=frame.index, dtype=object)


class LlmMismatch(ValueError):
    """Rows name another LLM than the one their task declares; ``str()`` says how many and what to do."""


UNNAMED_LLM = "unknown"  # what a row without an llm column gets (oirl.datasets.userlogs)


def check_declared_llms(session: Session, frame: pd.DataFrame) -> None:
    """Refuse rows of a task that declares its LLM when they name another one: trained into the task, they
    would make a model for one LLM from another's outcomes (a row that names no LLM is taken as the task's)."""
    names = frame["task"].unique().tolist()
    declared = dict(session.execute(select(Task.name, Task.llm)
                                    .where(Task.name.in_(names), Task.llm.is_not(None))).tuples().all())
    for task, llms in frame.groupby("task")["llm"]:
        want = declared.get(task)
        other = llms[(llms != want) & (llms != UNNAMED_LLM)] if want is not None else llms.iloc[:0]
        if len(other):
            shown = ", ".join(repr(n) for n in other.value_counts().index[:3])
            raise LlmMismatch(f"{len(other)} row(s) of task {task!r} name llm {shown}, but the task serves "
                              f"{want!r}; nothing imported: import them into a task of their own (--task, or a "
                              "task column), or correct their llm column")


def import_observations(session: Session, frame: pd.DataFrame, source: str,
                        link_active: bool = True) -> ImportResult:
    """Import validated rows (``REQUIRED_COLUMNS`` and any of ``OPTIONAL_COLUMNS``).

    Missing tasks are created; every logged prompt becomes a candidate of its task
    (``link_active``: whether a newly linked prompt is active).
    """
    if frame.empty:
        return ImportResult(0, 0)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"import frame lacks column(s) {missing}")
    check_declared_llms(session, frame)
    task_ids = ensure_tasks(session, frame["task"])
    prompt_ids = upsert_prompts(session, frame["prompt"])
    query_ids = upsert_queries(session, frame, task_ids)
    for task, prompts in frame.groupby("task")["prompt"]:
        link_prompts(session, task_ids[task], [prompt_ids[p] for p in prompts.unique()], active=link_active)

    propensity, decision, obs_id, logged_at = (_optional(frame, c) for c in OPTIONAL_COLUMNS)
    rows = []
    seen: dict[tuple, int] = {}  # identical rows so far: the occurrence number of the next one
    for i, (task, key, prompt, llm, reward, split) in enumerate(
            frame[["task", "external_key", "prompt", "llm", "reward", "split"]].itertuples(index=False)):
        p = None if propensity.iat[i] is None else float(propensity.iat[i])
        at = None if logged_at.iat[i] is None else pd.Timestamp(logged_at.iat[i])
        if at is not None:
            at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        sha = text_sha256(prompt)
        content = (task, key, sha, llm, float(reward), p, at.isoformat() if at is not None else None)
        occurrence = seen.get(content, 0)
        seen[content] = occurrence + 1
        rows.append({
            "observation_key": observation_key(*content, occurrence=occurrence, decision_id=decision.iat[i],
                                               observation_id=obs_id.iat[i]),
            "query_id": query_ids[(task, key)],
            "prompt_id": prompt_ids[prompt],
            "llm": llm,
            "reward": float(reward),
            "propensity": p,
            "decision_id": decision.iat[i],
            "split": split,
            "source": source[:255],
            "logged_at": None if at is None else at.to_pydatetime(),
        })
    # Counted by RETURNING, not rowcount (drivers disagree on it for executemany) nor by counting the table
    # before and after (eight concurrent imports reported 36,000 rows inserted for 16,000 stored).
    inserted = insert_ignoring_duplicates(session, Observation.__table__, rows, ["observation_key"])
    return ImportResult(rows=len(frame), inserted=inserted)


# --------------------------------------------------------------------------------------- read
def count_observations(session: Session, task: str | None = None, llm: str | None = None) -> int:
    stmt = select(func.count()).select_from(Observation)
    if task is not None:
        stmt = stmt.join(Query, Query.id == Observation.query_id).join(Task, Task.id == Query.task_id).where(
            Task.name == task)
    if llm is not None:
        stmt = stmt.where(Observation.llm == llm)
    return session.execute(stmt).scalar_one()


def observation_counts(session: Session) -> dict[int, int]:
    """task id -> number of observations."""
    stmt = (select(Query.task_id, func.count()).select_from(Observation)
            .join(Query, Query.id == Observation.query_id).group_by(Query.task_id))
    return dict(session.execute(stmt).all())


def observations_frame(session: Session, task: str | None = None, llm: str | Iterable[str] | None = None,
                       split: str | None = None) -> pd.DataFrame:
    """Logs as a DataFrame, one row per observation: ``observation_id, query_id, task, external_key,
    query, prompt_id, prompt, llm, reward, propensity, decision_id, split, logged_at``, plus
    ``correct`` (= reward) for code written for 0/1 outcomes."""
    stmt = (
        select(
            Observation.id.label("observation_id"),
            Observation.query_id,
            Task.name.label("task"),
            Query.external_key,
            Query.text.label("query"),
            Observation.prompt_id,
            Prompt.text.label("prompt"),
            Observation.llm,
            Observation.reward,
            Observation.propensity,
            Observation.decision_id,
            Observation.split,
            Observation.logged_at,
        )
        .join(Query, Query.id == Observation.query_id)
        .join(Task, Task.id == Query.task_id)
        .join(Prompt, Prompt.id == Observation.prompt_id)
        .order_by(Observation.id)
    )
    if task is not None:
        stmt = stmt.where(Task.name == task)
    if isinstance(llm, str):
        stmt = stmt.where(Observation.llm == llm)
    elif llm is not None:
        stmt = stmt.where(Observation.llm.in_(list(llm)))
    if split is not None:
        stmt = stmt.where(Observation.split == split)
    df = pd.DataFrame(session.execute(stmt).all(), columns=list(stmt.selected_columns.keys()))
    df["reward"] = df["reward"].astype(float)
    df["correct"] = df["reward"]
    return df


def accuracy_table(session: Session) -> pd.DataFrame:
    """Observations and mean reward per (task, llm, split, prompt)."""
    stmt = (
        select(
            Task.name.label("task"),
            Observation.llm,
            Observation.split,
            Prompt.id.label("prompt_id"),
            func.coalesce(Prompt.name, func.substr(Prompt.text, 1, 40)).label("prompt"),
            func.count().label("rows"),
            func.avg(Observation.reward).label("accuracy"),
        )
        .join(Query, Query.id == Observation.query_id)
        .join(Task, Task.id == Query.task_id)
        .join(Prompt, Prompt.id == Observation.prompt_id)
        .group_by(Task.name, Observation.llm, Observation.split, Prompt.id, Prompt.name, Prompt.text)
        .order_by(Task.name, Observation.llm, Observation.split, Prompt.id)
    )
    return pd.DataFrame(session.execute(stmt).all(), columns=list(stmt.selected_columns.keys()))


def decision_candidates(session: Session, decision_ids: Iterable[str]) -> dict[str, list[str]]:
    """Decision id -> the candidate prompt texts it offered (for the decisions still stored)."""
    from oirl.store.models import Decision

    ids = [d for d in dict.fromkeys(decision_ids) if d]
    found: dict[str, list] = {}
    for i in range(0, len(ids), CHUNK):
        stmt = select(Decision.id, Decision.candidates).where(Decision.id.in_(ids[i : i + CHUNK]))
        found.update(session.execute(stmt).all())
    prompt_ids = {c["id"] for cands in found.values() for c in cands if "id" in c}
    texts = dict(session.execute(select(Prompt.id, Prompt.text).where(Prompt.id.in_(prompt_ids))).all())
    return {d: [c["text"] if "text" in c else texts[c["id"]] for c in cands if "text" in c or c["id"] in texts]
            for d, cands in found.items()}
