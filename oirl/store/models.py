"""SQLAlchemy models: tasks, logs (queries, prompts, observations), the registry and jobs.

The store knows nothing of the maths: it keeps rows and hands back DataFrames.
Identity rules that make imports idempotent:
- a prompt is its exact text (``text_sha256`` unique), shared by tasks (``task_prompts``);
- a query is (task, external_key): the benchmark's line index, or the SHA-256 of the
  text for user logs, so SVAMP's repeated question texts stay distinct queries;
- an observation is an event, not a fact: the same (query, prompt, llm) may be observed
  many times with different rewards. Its ``observation_key`` (a decision id, or a hash of
  the row and its occurrence number, see ``oirl.store.logs.observation_key``) is unique.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so Alembic migrations match on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Task(Base):
    """A named selection problem: its candidate prompts, the LLM it serves, its own aliases."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    llm: Mapped[str | None] = mapped_column(String(128))  # the LLM it serves; None: not declared
    description: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prompt(Base):
    """A prompt is its exact text, shared by every task; whether it is a candidate is per task."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TaskPrompt(Base):
    """A prompt registered for a task; only active ones are default candidates."""

    __tablename__ = "task_prompts"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Query(Base):
    __tablename__ = "queries"
    __table_args__ = (UniqueConstraint("task_id", "external_key", name="uq_queries_task_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    external_key: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64), index=True)


class Observation(Base):
    """One try: a query answered by an LLM with a prompt, and the reward it earned.

    Repeated tries of the same (query, prompt, llm) are separate rows; ``observation_key``
    (unique) makes re-importing the same file or re-posting the same rows add nothing.
    """

    __tablename__ = "observations"
    __table_args__ = (
        Index("ix_observations_llm_split", "llm", "split"),
        Index("ix_observations_query_id", "query_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    observation_key: Mapped[str] = mapped_column(String(64), unique=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    llm: Mapped[str] = mapped_column(String(128))
    reward: Mapped[float] = mapped_column(Float)  # in [0, 1]; 1/0 for correct/incorrect
    propensity: Mapped[float | None] = mapped_column(Float)  # P(logging policy chose this prompt | query)
    decision_id: Mapped[str | None] = mapped_column(String(64), index=True)
    split: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(255))
    logged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Decision(Base):
    """One answer of ``/v1/select``: what was chosen among which candidates, with what probability.

    Feedback on it (``POST /v1/feedback``) becomes an observation keyed by the decision id,
    carrying ``propensity``, so off-policy evaluation and inverse-propensity training can undo
    the serving policy's preference for its own choices.
    """

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_task_created", "task_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # uuid4 hex, handed to the client
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    query_text: Mapped[str] = mapped_column(Text)
    llm: Mapped[str | None] = mapped_column(String(128))
    # [{"id": 3} | {"text": "..."}] in the order scored; texts only for unregistered candidates
    candidates: Mapped[list[Any]] = mapped_column(JSON)
    probabilities: Mapped[list[Any]] = mapped_column(JSON)  # π over the candidates (the logging policy)
    scores: Mapped[list[Any]] = mapped_column(JSON)  # the reward model's P(correct) per candidate
    chosen: Mapped[int] = mapped_column(Integer)  # index into candidates
    propensity: Mapped[float] = mapped_column(Float)  # probabilities[chosen]
    explored: Mapped[bool] = mapped_column(Boolean)
    fallback: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[int] = mapped_column(Integer)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)  # exploration setting, τ, default prompt
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    judged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reward: Mapped[float | None] = mapped_column(Float)


class ModelVersion(Base):
    """An immutable trained reward model: everything needed to trust and reload it."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the version number
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)  # None: made before tasks
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    backend: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedder: Mapped[str] = mapped_column(String(255))
    embedder_revision: Mapped[str] = mapped_column(String(128))
    library_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artefact_path: Mapped[str] = mapped_column(Text)
    artefact_sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(36))


class Alias(Base):
    """A movable name (``champion``, ``challenger``) of one task, pointing at one model version."""

    __tablename__ = "aliases"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[ModelVersion] = relationship(lazy="joined")


class AliasEvent(Base):
    """Append-only history of alias moves; rollback reads it to find the previous champion."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_task_alias", "task_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A background job (retrain, evaluation) persisted so that any worker can report on it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|succeeded|failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
