"""tasks, per-task prompts and aliases; outcomes become observations (events with a key)

Carries an existing store over:
- every distinct ``queries.dataset`` becomes a task of that name (its LLM: the one LLM of its
  logs, if there is exactly one); queries point at their task;
- each outcome becomes an observation with ``reward`` = 1.0 / 0.0 and the same
  ``observation_key`` a re-import of the same row would compute, so importing the same file
  or the benchmark again after the upgrade still adds nothing;
- a prompt becomes a candidate of every task it was logged in (active as it was); a prompt
  registered without logs becomes a candidate of every task;
- a model version takes the task of its ``data_snapshot.dataset``; the ``champion`` and
  ``challenger`` aliases (and their history) are kept for each task the version can serve.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 5_000


def _now() -> datetime:
    return datetime.now(UTC)


def upgrade() -> None:
    from oirl.store.logs import observation_key

    bind = op.get_bind()
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("llm", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_tasks_name")),
    )
    tasks = sa.table("tasks", sa.column("id", sa.Integer), sa.column("name", sa.String),
                     sa.column("llm", sa.String), sa.column("description", sa.Text),
                     sa.column("settings", sa.JSON), sa.column("created_at", sa.DateTime(timezone=True)))
    llms_of = {}
    for dataset, llm in bind.execute(sa.text(
            "SELECT DISTINCT q.dataset, o.llm FROM outcomes o JOIN queries q ON q.id = o.query_id")):
        llms_of.setdefault(dataset, set()).add(llm)
    names = [r[0] for r in bind.execute(sa.text("SELECT DISTINCT dataset FROM queries ORDER BY dataset"))]
    if names:
        op.bulk_insert(tasks, [{"name": n, "llm": next(iter(llms_of[n])) if len(llms_of.get(n, ())) == 1 else None,
                                "description": "", "settings": {}, "created_at": _now()} for n in names])
    task_id = dict(bind.execute(sa.text("SELECT name, id FROM tasks")).all())

    # queries: dataset name -> task id
    with op.batch_alter_table("queries") as b:
        b.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
    bind.execute(sa.text("UPDATE queries SET task_id = (SELECT t.id FROM tasks t WHERE t.name = queries.dataset)"))
    with op.batch_alter_table("queries") as b:
        b.alter_column("task_id", existing_type=sa.Integer(), nullable=False)
        b.drop_constraint("uq_queries_dataset_key", type_="unique")
        b.drop_column("dataset")
        b.create_unique_constraint("uq_queries_task_key", ["task_id", "external_key"])
        b.create_foreign_key(op.f("fk_queries_task_id_tasks"), "tasks", ["task_id"], ["id"], ondelete="CASCADE")

    # task_prompts: where each prompt was logged, with its old global active flag
    op.create_table(
        "task_prompts",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_task_prompts_prompt_id_prompts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_task_prompts_task_id_tasks"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "prompt_id", name=op.f("pk_task_prompts")),
    )
    logged = bind.execute(sa.text(
        "SELECT DISTINCT q.task_id, o.prompt_id, p.active FROM outcomes o JOIN queries q ON q.id = o.query_id "
        "JOIN prompts p ON p.id = o.prompt_id")).all()
    unlogged = bind.execute(sa.text(
        "SELECT p.id, p.active FROM prompts p WHERE NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.prompt_id = p.id)"
    )).all()
    links = [{"task_id": t, "prompt_id": p, "active": bool(a)} for t, p, a in logged]
    links += [{"task_id": t, "prompt_id": p, "active": bool(a)} for p, a in unlogged for t in task_id.values()]
    tp = sa.table("task_prompts", sa.column("task_id", sa.Integer), sa.column("prompt_id", sa.Integer),
                  sa.column("active", sa.Boolean), sa.column("added_at", sa.DateTime(timezone=True)))
    if links:
        now = _now()
        op.bulk_insert(tp, [{**row, "added_at": now} for row in links])
    with op.batch_alter_table("prompts") as b:
        b.drop_column("active")

    # outcomes -> observations (same keys as a re-import of the same rows would compute)
    op.create_table(
        "observations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("observation_key", sa.String(length=64), nullable=False),
        sa.Column("query_id", BigId, nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("llm", sa.String(length=128), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=True),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("split", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_observations_prompt_id_prompts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], name=op.f("fk_observations_query_id_queries"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
        sa.UniqueConstraint("observation_key", name=op.f("uq_observations_observation_key")),
    )
    with op.batch_alter_table("observations") as b:
        b.create_index("ix_observations_llm_split", ["llm", "split"], unique=False)
        b.create_index("ix_observations_query_id", ["query_id"], unique=False)
        b.create_index(b.f("ix_observations_prompt_id"), ["prompt_id"], unique=False)
        b.create_index(b.f("ix_observations_decision_id"), ["decision_id"], unique=False)
    obs = sa.table("observations", *(sa.column(c) for c in (
        "id", "observation_key", "query_id", "prompt_id", "llm", "reward", "split", "source", "created_at")))
    select_old = sa.text(
        "SELECT o.id, o.query_id, o.prompt_id, o.llm, o.correct, o.split, o.source, o.created_at, "
        "t.name, q.external_key, p.text_sha256 FROM outcomes o JOIN queries q ON q.id = o.query_id "
        "JOIN tasks t ON t.id = q.task_id JOIN prompts p ON p.id = o.prompt_id "
        "WHERE o.id > :after ORDER BY o.id LIMIT :n")
    after = 0
    while True:
        rows = bind.execute(select_old, {"after": after, "n": CHUNK}).all()
        if not rows:
            break
        op.bulk_insert(obs, [
            {"id": oid, "query_id": qid, "prompt_id": pid, "llm": llm, "reward": 1.0 if correct else 0.0,
             "split": split, "source": source, "created_at": created,
             # outcomes were unique per (query, prompt, llm): each is occurrence 0 of its row
             "observation_key": observation_key(task, key, psha, llm, 1.0 if correct else 0.0)}
            for oid, qid, pid, llm, correct, split, source, created, task, key, psha in rows])
        after = rows[-1][0]
    if bind.dialect.name == "postgresql":  # ids were copied: move the sequence past them
        bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('observations', 'id'), "
                             "COALESCE((SELECT MAX(id) FROM observations), 0) + 1, false)"))
    with op.batch_alter_table("outcomes") as b:
        b.drop_index(b.f("ix_outcomes_prompt_id"))
        b.drop_index("ix_outcomes_llm_split")
    op.drop_table("outcomes")

    # model versions belong to a task (legacy multi-dataset versions: none)
    with op.batch_alter_table("model_versions") as b:
        b.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
        b.create_index(b.f("ix_model_versions_task_id"), ["task_id"], unique=False)
        b.create_foreign_key(op.f("fk_model_versions_task_id_tasks"), "tasks", ["task_id"], ["id"])
    import json

    version_task = {}
    for vid, snapshot in bind.execute(sa.text("SELECT id, data_snapshot FROM model_versions")).all():
        snap = json.loads(snapshot) if isinstance(snapshot, str) else (snapshot or {})
        version_task[vid] = task_id.get(snap.get("dataset"))
        if version_task[vid] is not None:
            bind.execute(sa.text("UPDATE model_versions SET task_id = :t WHERE id = :v"),
                         {"t": version_task[vid], "v": vid})

    def serves(vid) -> list[int]:  # a task-less (multi-dataset) version keeps serving every task
        t = version_task.get(vid)
        return list(task_id.values()) if t is None else [t]

    # aliases and their history, per task
    old_aliases = bind.execute(sa.text("SELECT name, version_id, updated_at FROM aliases")).all()
    old_events = bind.execute(sa.text(
        "SELECT alias, version_id, previous_version_id, reason, created_at FROM alias_events ORDER BY id")).all()
    op.drop_table("aliases")
    with op.batch_alter_table("alias_events") as b:
        b.drop_index(b.f("ix_alias_events_alias"))
    op.drop_table("alias_events")
    op.create_table(
        "aliases",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_aliases_task_id_tasks"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name=op.f("fk_aliases_version_id_model_versions")),
        sa.PrimaryKeyConstraint("task_id", "name", name=op.f("pk_aliases")),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_alias_events_task_id_tasks"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["previous_version_id"], ["model_versions.id"],
                                name=op.f("fk_alias_events_previous_version_id_model_versions")),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name=op.f("fk_alias_events_version_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_events")),
    )
    with op.batch_alter_table("alias_events") as b:
        b.create_index("ix_alias_events_task_alias", ["task_id", "alias"], unique=False)
    al = sa.table("aliases", *(sa.column(c) for c in ("task_id", "name", "version_id", "updated_at")))
    ev = sa.table("alias_events", *(sa.column(c) for c in (
        "task_id", "alias", "version_id", "previous_version_id", "reason", "created_at")))
    rows = [{"task_id": t, "name": n, "version_id": v, "updated_at": u} for n, v, u in old_aliases for t in serves(v)]
    if rows:
        op.bulk_insert(al, rows)
    rows = [{"task_id": t, "alias": a, "version_id": v, "previous_version_id": pv, "reason": r, "created_at": c}
            for a, v, pv, r, c in old_events for t in serves(v)]
    if rows:
        op.bulk_insert(ev, rows)


def downgrade() -> None:
    """Back to one global alias set and unique (query, prompt, llm) outcomes; the first
    observation of each pair survives (reward >= 0.5 counts as correct)."""
    bind = op.get_bind()
    op.drop_table("aliases")
    op.drop_table("alias_events")
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["previous_version_id"], ["model_versions.id"],
                                name=op.f("fk_alias_events_previous_version_id_model_versions")),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name=op.f("fk_alias_events_version_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_events")),
    )
    with op.batch_alter_table("alias_events") as b:
        b.create_index(b.f("ix_alias_events_alias"), ["alias"], unique=False)
    op.create_table(
        "aliases",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name=op.f("fk_aliases_version_id_model_versions")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_aliases")),
    )
    with op.batch_alter_table("model_versions") as b:
        b.drop_constraint(op.f("fk_model_versions_task_id_tasks"), type_="foreignkey")
        b.drop_index(b.f("ix_model_versions_task_id"))
        b.drop_column("task_id")

    op.create_table(
        "outcomes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("query_id", BigId, nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("llm", sa.String(length=128), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("split", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_outcomes_prompt_id_prompts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], name=op.f("fk_outcomes_query_id_queries"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("query_id", "prompt_id", "llm", name="uq_outcomes_query_prompt_llm"),
    )
    with op.batch_alter_table("outcomes") as b:
        b.create_index("ix_outcomes_llm_split", ["llm", "split"], unique=False)
        b.create_index(b.f("ix_outcomes_prompt_id"), ["prompt_id"], unique=False)
    bind.execute(sa.text(
        "INSERT INTO outcomes (id, query_id, prompt_id, llm, correct, split, source, created_at) "
        "SELECT o.id, o.query_id, o.prompt_id, o.llm, o.reward >= 0.5, o.split, o.source, o.created_at "
        "FROM observations o WHERE o.id = (SELECT MIN(o2.id) FROM observations o2 WHERE o2.query_id = o.query_id "
        "AND o2.prompt_id = o.prompt_id AND o2.llm = o.llm)"))
    op.drop_table("observations")

    with op.batch_alter_table("prompts") as b:
        b.add_column(sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.drop_table("task_prompts")

    with op.batch_alter_table("queries") as b:
        b.add_column(sa.Column("dataset", sa.String(length=64), nullable=True))
    bind.execute(sa.text("UPDATE queries SET dataset = (SELECT t.name FROM tasks t WHERE t.id = queries.task_id)"))
    with op.batch_alter_table("queries") as b:
        b.alter_column("dataset", existing_type=sa.String(length=64), nullable=False)
        b.drop_constraint(op.f("fk_queries_task_id_tasks"), type_="foreignkey")
        b.drop_constraint("uq_queries_task_key", type_="unique")
        b.drop_column("task_id")
        b.create_unique_constraint("uq_queries_dataset_key", ["dataset", "external_key"])
    op.drop_table("tasks")
